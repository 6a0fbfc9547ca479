"""Host keys come from the console's cloud-init block; anything else is refused."""

from pathlib import Path

import pytest

from gcloudctl.drivers import ssh

SAMPLE = Path(__file__).with_name("data").joinpath("console-sample.log").read_text()


def test_parse_reads_fingerprints_and_keys_of_a_real_console():
    keys = ssh.ConsoleHostKeys.parse(SAMPLE)
    assert set(keys.fingerprints) == {"ECDSA", "ED25519", "RSA"}
    assert keys.fingerprints["ED25519"] == "SHA256:EoeNox6xoloOM75dHVY5pbHruJz0E7l6FEKTkDCmEww"
    assert [k for k, _ in keys.keys] == ["ecdsa-sha2-nistp256", "ssh-ed25519", "ssh-rsa"]
    assert all(keys.allows(ssh.sha256_fingerprint(b64)) for _, b64 in keys.keys)


def test_the_last_block_wins_after_a_rebuild():
    rebuilt = SAMPLE.replace("EoeNox6xoloOM75dHVY5pbHruJz0E7l6FEKTkDCmEww", "NEWFINGERPRINTxxxxxxxxxxxxxxxxxxxxxxxxxxxx")
    keys = ssh.ConsoleHostKeys.parse(SAMPLE + "\n[reboot]\n" + rebuilt.split("ci-info: +---", 1)[0] +
                                     rebuilt[rebuilt.index("<14>"):])
    assert keys.fingerprints["ED25519"] == "SHA256:NEWFINGERPRINTxxxxxxxxxxxxxxxxxxxxxxxxxxxx"


def test_no_block_means_no_trust():
    with pytest.raises(ssh.HostKeyUnknown):
        ssh.ConsoleHostKeys.parse("[  OK  ] Started ssh.service\n")


def test_trust_console_writes_known_hosts_and_is_idempotent(tmp_path):
    kh = tmp_path / "kh" / "moh"
    kh.parent.mkdir()
    kh.write_text("10.0.0.9 ssh-ed25519 AAAAother\n10.0.0.5 ssh-ed25519 AAAAstale\n")
    ssh.trust_console(kh, "10.0.0.5", SAMPLE)
    first = kh.read_text()
    ssh.trust_console(kh, "10.0.0.5", SAMPLE)
    assert kh.read_text() == first
    lines = first.splitlines()
    assert "10.0.0.9 ssh-ed25519 AAAAother" in lines and not any("AAAAstale" in ln for ln in lines)
    assert sum(ln.startswith("10.0.0.5 ") for ln in lines) == 3


def test_a_printed_key_that_does_not_match_its_fingerprint_is_refused(tmp_path):
    keys = ssh.ConsoleHostKeys.parse(SAMPLE)
    ed = dict(keys.keys)["ssh-ed25519"]
    tampered = SAMPLE.replace(ed, "AAAAC3NzaC1lZDI1NTE5AAAAIPjKSyfnalo5D4gi/v+DkKTckWMX29ClcLSiKl5uquBx")
    with pytest.raises(ssh.HostKeyMismatch):
        ssh.trust_console(tmp_path / "kh", "10.0.0.5", tampered)


def test_port_other_than_22_uses_bracket_pattern(tmp_path):
    kh = tmp_path / "kh"
    ssh.trust_console(kh, "10.0.0.5", SAMPLE, port=2222)
    assert kh.read_text().startswith("[10.0.0.5]:2222 ")


def test_wait_ready_backs_off_and_times_out(tmp_path):
    clock = {"t": 0.0}
    sleeps = []

    def sleep(s):
        sleeps.append(s)
        clock["t"] += s

    target = ssh.SshTarget(host="127.0.0.1", port=1, user="x")  # nothing listens on port 1
    with pytest.raises(ssh.TimeoutExpired) as exc:
        ssh.wait_ready(target, tmp_path / "kh", timeout=20, clock=lambda: clock["t"], sleep=sleep)
    assert sleeps[:3] == [0.5, 0.85, pytest.approx(1.445)] and max(sleeps) <= 8.0
    assert "not ready" in exc.value.message
