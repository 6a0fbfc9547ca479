"""stdin/stdout <-> TCP relay used as an SSH ProxyCommand from inside the controller namespace.

Usage: nsenter --net=/run/netns/<ctl> python3 -I relay.py HOST PORT
Standalone on purpose (stdlib only, no package import) so it starts fast and works under -I.
It connects only to the address it is given; the caller restricts that to its own bridge.
"""

import os
import selectors
import socket
import sys


def main(host: str, port: int, timeout: float = 10.0) -> int:
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except OSError as exc:
        sys.stderr.write(f"relay: cannot connect to {host}:{port}: {exc}\n")
        return 255
    sock.settimeout(None)
    sel = selectors.DefaultSelector()
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    sel.register(stdin, selectors.EVENT_READ, "in")
    sel.register(sock, selectors.EVENT_READ, "sock")
    open_in = True
    while True:
        for key, _ in sel.select():
            if key.data == "in":
                data = os.read(stdin, 65536)
                if not data:
                    sel.unregister(stdin)
                    open_in = False
                    try:
                        sock.shutdown(socket.SHUT_WR)
                    except OSError:
                        return 0
                else:
                    sock.sendall(data)
            else:
                data = sock.recv(65536)
                if not data:
                    return 0
                view = memoryview(data)
                while view:
                    view = view[os.write(stdout, view):]
        if not open_in and not sel.get_map():
            return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2])))
