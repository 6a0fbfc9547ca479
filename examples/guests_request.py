"""Write the example request for devcloud guests: every server hardened and on a floating IP,
with the automation key given on the command line (used by `make demo-guests`).

usage: python examples/guests_request.py PUBLIC_KEY_FILE OUT.yaml [TENANT]
"""

import sys
from pathlib import Path

import yaml

pub, out = Path(sys.argv[1]), Path(sys.argv[2])
doc = yaml.safe_load((Path(__file__).parent / "byt-his-staging.yaml").read_text())
doc["metadata"]["name"] = sys.argv[3] if len(sys.argv) > 3 else "byt-his-guests"
doc["spec"]["quotas"]["floatingIPs"] = 3
doc["spec"]["keypairs"][0]["publicKey"] = pub.read_text().strip()
for server in doc["spec"]["servers"]:
    server.update(hardening={}, floatingIP=True, userData={"template": "default.yaml.j2", "vars": {}})
out.parent.mkdir(parents=True, exist_ok=True)
out.write_text(yaml.safe_dump(doc, sort_keys=False))
print(out)
