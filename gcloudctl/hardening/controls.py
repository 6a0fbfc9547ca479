"""Control catalogue: the project's hardening controls, their CIS mappings, levels and checks.

Stage: pure data (no I/O). Used by `audit` (own checks over SSH), the reports, and a test that
keeps the playbooks' task names in step with these ids.

Controls marked `audit_only` have no safe automatic fix (e.g. a second UID 0 account): they are
checked and reported, never changed. Each control has a stable project id (`GC-...`), the lowest classification level whose profile
requires it (profiles L1..L4 are cumulative, like the levels), the CIS Benchmark items it
implements for Debian 12 and Ubuntu 24.04 (Level 1 - Server; numbering of the v1.x benchmarks,
which share their structure), and a shell check run as root on the host. A check prints its
evidence and exits 0 = pass, 1 = fail, 3 = not applicable here (e.g. kernel-wide settings inside a
namespace container, which the playbooks configure on disk but cannot and must not apply).
"""

from __future__ import annotations

from dataclasses import dataclass

PASS, FAIL, NOT_APPLICABLE = 0, 1, 3

# Shell functions available to every check (sourced before it).
CHECK_PRELUDE = r"""
in_container() { [ -f /run/systemd/container ] || systemd-detect-virt -cq 2>/dev/null; }
sshd_val() { sshd -T 2>/dev/null | awk -v k="$1" 'tolower($1)==k {$1=""; sub(/^ /,""); print; exit}'; }
sshd_is() { v=$(sshd_val "$1"); echo "sshd $1=$v"; [ "$v" = "$2" ]; }
sshd_le() { v=$(sshd_val "$1"); echo "sshd $1=$v"; [ -n "$v" ] && [ "$v" -le "$2" ] && [ "$v" -gt 0 ]; }
perm_max() { s=$(stat -Lc '%a %U %G' "$1" 2>/dev/null) || { echo "$1 missing"; return 1; }; echo "$1 $s";
  m=${s%% *}; [ $(( 0$m & ~0$2 & 07777 )) -eq 0 ] && [ "$(echo $s | cut -d' ' -f2)" = root ]; }
netsys() { v=$(cat "/proc/sys/net/$1" 2>/dev/null); echo "net.$(echo $1 | tr / .)=$v"; [ "$v" = "$2" ]; }
def_val() { awk -v k="$1" '$1==k {print $2}' /etc/login.defs | tail -1; }
# effective value of a systemd config (last assignment wins across the file and its drop-ins)
sd_val() { systemd-analyze cat-config "$1" 2>/dev/null | awk -F= -v k="$2" '$1==k {v=$2} END {print v}'; }
# a throw-away local account, to see what the account policy does to a new user (removed after)
probe_user() { u="gcprobe$$"; userdel "$u" >/dev/null 2>&1; useradd -M -s /bin/sh "$u" || return 1; echo "$u"; }
# su as `nobody` into user $1 with password $2 on a pty; exit 0 when su let it in
su_try() { python3 - "$1" "$2" <<'PY'
import os, pty, select, sys, time
user, pw = sys.argv[1], sys.argv[2]
pid, fd = pty.fork()
if pid == 0:
    os.execvp("runuser", ["runuser", "-u", "nobody", "--", "su", "-c", "true", user])
buf, sent, deadline = b"", False, time.time() + 20
while time.time() < deadline:
    done, status = os.waitpid(pid, os.WNOHANG)
    if done:
        sys.exit(0 if os.waitstatus_to_exitcode(status) == 0 else 1)
    ready, _, _ = select.select([fd], [], [], 0.2)
    if ready:
        try:
            buf += os.read(fd, 1024)
        except OSError:
            pass
    if not sent and b"assword" in buf:
        os.write(fd, pw.encode() + b"\n")
        sent = True
os.kill(pid, 9)
sys.exit(1)
PY
}
# N wrong passwords for a probe account, then the right one must be refused (locked out)
lockout_probe() { u=$(probe_user) || { echo "cannot create a probe account"; return 1; }
  pw="Gc-$(head -c 18 /dev/urandom | base64 | tr -dc A-Za-z0-9)-7q"; echo "$u:$pw" | chpasswd 2>/dev/null
  r=1; if ! su_try "$u" "$pw"; then echo "the probe account's right password is refused before any failure"
  else for i in $(seq 1 "$1"); do su_try "$u" "wrong-$i-x" && echo "wrong password $i accepted"; done
    if su_try "$u" "$pw"; then echo "after $1 wrong passwords the right one is still accepted: no lock-out"
    else echo "after $1 wrong passwords the account is locked: right password refused;" \
      "faillock: deny=$(awk -F'= *' '/^deny/ {print $2}' /etc/security/faillock.conf)" \
      "unlock_time=$(awk -F'= *' '/^unlock_time/ {print $2}' /etc/security/faillock.conf)"
      t=$(awk -F'= *' '/^unlock_time/ {print $2}' /etc/security/faillock.conf); [ "${t:-0}" = 0 ] || [ "${t:-0}" -ge 900 ] && r=0; fi; fi
  faillock --user "$u" --reset 2>/dev/null; userdel "$u" 2>/dev/null; return $r; }
# new and existing accounts with a usable password: max days <= $1, min >= 1, warn >= $2
ageing_probe() { u=$(probe_user) || { echo "cannot create a probe account"; return 1; }
  line=$(awk -F: -v u="$u" '$1==u {print $4" "$5" "$6}' /etc/shadow); userdel "$u"
  set -- "$1" "$2" $line; echo "new account: min=$3 max=$4 warn=$5"
  bad=$(awk -F: -v m="$1" '$2 !~ /^[!*]/ && $2 != "" && ($5 == "" || $5 > m || $5 < 0) {print $1"(max="$5")"}' /etc/shadow | xargs)
  echo "accounts with a usable password over ${1} days: ${bad:-none}"
  [ -n "$4" ] && [ "$4" -le "$1" ] && [ "${3:-0}" -ge 1 ] && [ "${5:-0}" -ge "$2" ] && [ -z "$bad" ]; }
# journald and rsyslog keep logs at least $1 days (effective settings, as the daemons read them)
retention_ok() { python3 - "$1" "$(sd_val systemd/journald.conf MaxRetentionSec)" <<'PY'
import glob, re, sys
need, value = int(sys.argv[1]), sys.argv[2].strip()
units = {"": 1 / 86400, "s": 1 / 86400, "min": 1 / 1440, "h": 1 / 24, "d": 1, "day": 1, "w": 7, "week": 7,
         "month": 30.44, "m": 30.44, "y": 365.25, "year": 365.25}
days = 0.0
for num, unit in re.findall(r"(\d+)\s*([a-z]*)", value):
    days += int(num) * units.get(unit.rstrip("s") if unit not in units else unit, 0)
ok = days == 0 or days >= need
print(f"journald MaxRetentionSec={value or 'unset'} ->", "no deletion by age" if days == 0 else f"{days:.0f} days")
try:
    text = open("/etc/logrotate.d/rsyslog").read()
    rot = int(re.search(r"^\s*rotate\s+(\d+)", text, re.M).group(1))
    period = next((d for word, d in (("daily", 1), ("weekly", 7), ("monthly", 30), ("yearly", 365))
                   if re.search(rf"^\s*{word}\b", text, re.M)), 7)
    print(f"rsyslog files: rotate {rot} x {period} days = {rot * period} days")
    ok = ok and rot * period >= need
except (OSError, AttributeError):
    print("rsyslog files: none")
print(f"needed: {need} days")
sys.exit(0 if ok else 1)
PY
}
# outbound default deny: a connection to a destination nobody declared (the first other address of
# the host's subnet, tcp/9) must fail AND be counted by the firewall's final reject rule
egress_probe() { out=$(nft list chain inet gcloudctl output 2>/dev/null) || { echo 'no gcloudctl output chain live'; return 1; }
  echo "$out" | grep -q 'policy drop' || { echo 'outbound policy is not drop'; return 1; }
  n0=$(echo "$out" | awk '/counter packets [0-9]+ .*reject/ {print $3}')
  r=$(python3 - <<'PY'
import ipaddress, socket, subprocess
line = subprocess.run(["ip", "-o", "-4", "addr", "show", "scope", "global"], capture_output=True, text=True).stdout.split()
iface = ipaddress.ip_interface(line[3])
dst = next(str(a) for a in iface.network.hosts() if a != iface.ip)
s = socket.socket(); s.settimeout(3)
try:
    s.connect((dst, 9)); print(f"tcp to {dst}:9 connected")
except OSError as e:
    print(f"tcp to {dst}:9 failed ({e.strerror or e})")
PY
); n1=$(nft list chain inet gcloudctl output 2>/dev/null | awk '/counter packets [0-9]+ .*reject/ {print $3}')
  echo "$r; deny counter ${n0:-none} -> ${n1:-none}"
  case "$r" in *failed*) [ -n "$n0" ] && [ "${n1:-0}" -gt "$n0" ] && echo 'refused by the host firewall' && return 0;; esac
  echo 'not stopped by the host firewall'; return 1; }
kernel_na() { if in_container && ! [ -w /proc/sys/kernel ]; then
  echo "kernel-wide sysctl $1 is shared with the machine and read-only in this container;" \
       "configured on disk: $(grep -rhs "^$1" /etc/sysctl.d/ | tail -1 || echo no)"; exit 3; fi; }
"""


@dataclass(frozen=True)
class Control:
    id: str
    title: str
    level: int  # lowest profile level that requires it
    cis_debian12: str
    cis_ubuntu2404: str
    check: str  # shell, run as root after CHECK_PRELUDE
    audit_only: bool = False  # no safe automatic remediation: reported, never changed by a role


def _c(id, title, level, cis, check, ubuntu=None, audit_only=False):  # noqa: A002 - table helper
    return Control(id=id, title=title, level=level, cis_debian12=cis, cis_ubuntu2404=ubuntu or cis, check=check,
                   audit_only=audit_only)


CONTROLS: tuple[Control, ...] = (
    # --- SSH server (CIS 5.1) -------------------------------------------------------------
    _c("GC-SSH-01", "sshd_config owned by root, mode 0600", 1, "5.1.1", "perm_max /etc/ssh/sshd_config 600"),
    _c("GC-SSH-02", "root login over SSH disabled", 1, "5.1.20", "sshd_is permitrootlogin no"),
    _c("GC-SSH-03", "password authentication disabled", 1, "5.1.12",
       "sshd_is passwordauthentication no && sshd_is kbdinteractiveauthentication no"),
    _c("GC-SSH-04", "empty passwords refused", 1, "5.1.19", "sshd_is permitemptypasswords no"),
    _c("GC-SSH-05", "X11 forwarding disabled", 1, "5.1.8", "sshd_is x11forwarding no"),
    _c("GC-SSH-06", "MaxAuthTries at most 4", 1, "5.1.16", "sshd_le maxauthtries 4"),
    _c("GC-SSH-07", "host-based auth and rhosts ignored", 1, "5.1.10",
       "sshd_is hostbasedauthentication no && sshd_is ignorerhosts yes"),
    _c("GC-SSH-08", "user environment not permitted", 1, "5.1.21", "sshd_is permituserenvironment no"),
    _c("GC-SSH-09", "LoginGraceTime at most 60 s", 1, "5.1.13", "sshd_le logingracetime 60"),
    _c("GC-SSH-10", "idle sessions closed (ClientAliveInterval <= 300)", 1, "5.1.7",
       "sshd_le clientaliveinterval 300 && sshd_le clientalivecountmax 3"),
    _c("GC-SSH-11", "verbose SSH logging", 1, "5.1.14", "sshd_is loglevel VERBOSE"),
    _c("GC-SSH-12", "warning banner shown", 1, "5.1.5", "sshd_is banner /etc/issue.net"),
    _c("GC-SSH-13", "MaxStartups 10:30:60", 1, "5.1.18", "sshd_is maxstartups 10:30:60"),
    _c("GC-SSH-14", "strong ciphers, MACs and key exchange only", 3, "5.1.6",
       "c=$(sshd_val ciphers); m=$(sshd_val macs); k=$(sshd_val kexalgorithms); echo \"ciphers=$c macs=$m kex=$k\";"
       " ! echo \"$c,$m,$k\" | grep -Eq 'cbc|3des|arcfour|hmac-md5|hmac-sha1[,-]|hmac-sha1$|sha1[,]|sha1$|umac-64'"),
    _c("GC-SSH-15", "TCP/agent forwarding disabled", 3, "5.1.8",
       "sshd_is allowtcpforwarding no && sshd_is allowagentforwarding no"),
    _c("GC-SSH-16", "SSH access limited to the admin group", 3, "5.1.4", "sshd_is allowgroups sudo"),
    # --- privilege escalation and accounts (CIS 5.2, 5.4) ----------------------------------
    _c("GC-SUDO-01", "sudo runs commands in a pty", 1, "5.2.2",
       "grep -rhEs '^\\s*Defaults\\s+.*use_pty' /etc/sudoers /etc/sudoers.d/"),
    _c("GC-SUDO-02", "sudo keeps its own log file", 1, "5.2.3",
       "grep -rhEs '^\\s*Defaults\\s+.*logfile=' /etc/sudoers /etc/sudoers.d/"),
    _c("GC-ACC-01", "root password locked", 1, "5.4.2.4",
       "s=$(passwd -S root | awk '{print $2}'); echo \"root status $s\"; [ \"$s\" = L ]"),
    _c("GC-ACC-02", "only root has UID 0", 1, "5.4.2.1",
       "u=$(awk -F: '$3==0 {print $1}' /etc/passwd | xargs); echo \"uid0: $u\"; [ \"$u\" = root ]",
       audit_only=True),
    _c("GC-ACC-03", "no account with an empty password", 1, "7.2.2",
       "e=$(awk -F: '$2==\"\" {print $1}' /etc/shadow | xargs); echo \"empty: ${e:-none}\"; [ -z \"$e\" ]"),
    _c("GC-ACC-04", "default umask 027", 1, "5.4.3.3", "v=$(def_val UMASK); echo \"UMASK=$v\"; [ \"$v\" = 027 ]"),
    _c("GC-ACC-05", "password ageing applies to new and existing accounts (max 90 days, min 1, warn 7)", 2,
       "5.4.1.1", "ageing_probe 90 7"),
    _c("GC-ACC-08", "admin passwords changed every 2 months (max 60 days, warn 14)", 3, "5.4.1.1",
       "ageing_probe 60 14"),
    _c("GC-ACC-09", "account locked for >= 15 min after 5 failed passwords", 2, "5.3.3.1.1",
       "lockout_probe 5"),
    _c("GC-ACC-10", "account locked after 3 failed passwords", 4, "5.3.3.1.1", "lockout_probe 3"),
    _c("GC-ACC-06", "password quality: minlen 14", 2, "5.3.3.2.2",
       "v=$(awk -F= '/^\\s*minlen/ {gsub(/ /,\"\",$2); print $2}' /etc/security/pwquality.conf 2>/dev/null);"
       " echo \"minlen=${v:-unset}\"; [ -n \"$v\" ] && [ \"$v\" -ge 14 ]"),
    _c("GC-ACC-07", "shell sessions time out (TMOUT)", 3, "5.4.3.2",
       "grep -rhs '^readonly TMOUT=' /etc/profile.d/ || exit 1"),
    # --- file permissions (CIS 7.1, 2.4) ---------------------------------------------------
    _c("GC-FILE-01", "/etc/passwd and /etc/group mode 0644", 1, "7.1.1",
       "perm_max /etc/passwd 644 && perm_max /etc/group 644"),
    _c("GC-FILE-02", "/etc/shadow and /etc/gshadow mode 0640", 1, "7.1.5",
       "perm_max /etc/shadow 640 && perm_max /etc/gshadow 640"),
    _c("GC-FILE-03", "cron files readable by root only", 1, "2.4.1.2",
       "perm_max /etc/crontab 600 && for d in cron.hourly cron.daily cron.weekly cron.monthly cron.d; do"
       " perm_max /etc/$d 700 || exit 1; done"),
    # --- banners, modules, core dumps (CIS 1.x) ------------------------------------------------
    _c("GC-BAN-01", "login banners set, no OS details", 1, "1.7.2",
       "for f in /etc/issue /etc/issue.net; do [ -s $f ] || { echo \"$f empty\"; exit 1; };"
       " if grep -Eqi '(\\\\v|\\\\r|\\\\m|\\\\s|debian)' $f; then echo \"$f shows OS details\"; exit 1; fi; done; echo banners ok"),
    _c("GC-MOD-01", "unused filesystem modules disabled", 1, "1.1.1.1",
       "for m in cramfs freevxfs hfs hfsplus jffs2 udf usb-storage; do"
       " grep -rqsE \"^\\s*install\\s+$m\\s+/bin/(false|true)\" /etc/modprobe.d/ || { echo \"$m not disabled\"; exit 1; }; done;"
       " echo 'modprobe.d disables cramfs freevxfs hfs hfsplus jffs2 udf usb-storage'"),
    _c("GC-CORE-01", "core dumps restricted", 1, "1.5.4",
       "grep -rhsE '^\\s*\\*\\s+hard\\s+core\\s+0' /etc/security/limits.conf /etc/security/limits.d/ || exit 1"),
    _c("GC-KRN-01", "address space layout randomisation (kernel.randomize_va_space=2)", 1, "1.5.3",
       "kernel_na kernel.randomize_va_space; v=$(cat /proc/sys/kernel/randomize_va_space); echo $v; [ $v = 2 ]"),
    _c("GC-KRN-02", "ptrace scope restricted (kernel.yama.ptrace_scope=1)", 1, "1.5.2",
       "kernel_na kernel.yama.ptrace_scope; v=$(cat /proc/sys/kernel/yama/ptrace_scope); echo $v; [ $v -ge 1 ]"),
    _c("GC-PART-01", "/tmp is a separate, nodev/nosuid/noexec file system", 1, "1.1.2.1.1",
       "if in_container; then echo 'partitions are not applicable in a namespace container'; exit 3; fi;"
       " findmnt -n -o OPTIONS /tmp | tee /dev/stderr | grep -q noexec"),
    # --- network parameters, per network namespace (CIS 3.3) -------------------------------
    _c("GC-NET-01", "ICMP redirects neither sent nor accepted", 1, "3.3.2",
       "netsys ipv4/conf/all/send_redirects 0 && netsys ipv4/conf/all/accept_redirects 0"
       " && netsys ipv4/conf/all/secure_redirects 0 && netsys ipv6/conf/all/accept_redirects 0"),
    _c("GC-NET-02", "source-routed packets refused", 1, "3.3.8",
       "netsys ipv4/conf/all/accept_source_route 0 && netsys ipv6/conf/all/accept_source_route 0"),
    _c("GC-NET-03", "martians logged, reverse-path filter on", 1, "3.3.9",
       "netsys ipv4/conf/all/log_martians 1 && netsys ipv4/conf/all/rp_filter 1"),
    _c("GC-NET-04", "TCP SYN cookies and broadcast ICMP ignored", 1, "3.3.10",
       "netsys ipv4/tcp_syncookies 1 && netsys ipv4/icmp_echo_ignore_broadcasts 1"),
    _c("GC-NET-05", "IPv6 router advertisements ignored", 1, "3.3.11", "netsys ipv6/conf/all/accept_ra 0"),
    # --- logging (CIS 6.1) -----------------------------------------------------------------
    _c("GC-LOG-01", "journald stores logs persistently and compressed", 1, "6.1.1.4",
       "m=gcloudctl-audit-$$-$(date +%s%N); logger -t gcloudctl-audit \"$m\"; journalctl --sync 2>/dev/null;"
       " c=$(sd_val systemd/journald.conf Compress); echo \"Storage=$(sd_val systemd/journald.conf Storage) Compress=${c:-yes}\";"
       " if journalctl -D /var/log/journal -t gcloudctl-audit -o cat 2>/dev/null | grep -qF \"$m\"; then"
       " echo 'a line just logged is in the persistent journal (/var/log/journal)'; else"
       " echo 'a line just logged is not in /var/log/journal'; exit 1; fi; [ \"${c:-yes}\" = yes ]"),
    _c("GC-LOG-02", "logs kept at least 1 month (nothing deleted earlier by age)", 2, "6.1.1.3", "retention_ok 30"),
    # --- level 3+: firewall, audit, updates, time ------------------------------------------
    _c("GC-FW-01", "nftables default-deny inbound, enabled at boot", 3, "4.3.8",
       "systemctl is-enabled nftables >/dev/null 2>&1 || { echo 'nftables not enabled'; exit 1; };"
       " nft list chain inet gcloudctl input 2>/dev/null | grep -E 'policy drop' || { echo 'no drop policy live'; exit 1; }"),
    _c("GC-FW-02", "loopback and established traffic allowed, SSH reachable", 3, "4.3.4",
       "nft list chain inet gcloudctl input 2>/dev/null | grep -q 'ct state established,related accept' ||"
       " { echo 'established traffic not accepted'; exit 1; }; echo 'this audit arrived over SSH: SSH is reachable';"
       " if timeout 3 bash -c '</dev/tcp/127.0.0.1/22' 2>/dev/null; then echo 'loopback: 127.0.0.1:22 answers';"
       " else echo 'loopback: 127.0.0.1:22 refused'; exit 1; fi"),
    _c("GC-FW-03", "SSH admitted only from the admin sources (live rule set)", 3, "4.3.9",
       "r=$(nft list chain inet gcloudctl input 2>/dev/null) || { echo 'no gcloudctl rule set live'; exit 1; };"
       " echo \"$r\" | grep -E 'dport 22 (accept|drop)';"
       " first=$(echo \"$r\" | grep -nE 'dport 22 drop$' | head -1 | cut -d: -f1);"
       " [ -n \"$first\" ] || { echo 'SSH from other sources is not dropped'; exit 1; };"
       " if echo \"$r\" | head -n \"$first\" | grep -E 'dport 22 accept' | grep -Eq 'saddr (0\\.0\\.0\\.0/0|::/0)'; then"
       " echo 'SSH admitted from anywhere'; exit 1; fi;"
       " if echo \"$r\" | head -n \"$first\" | grep -vE 'dport 22 accept' | grep -E 'accept$' | grep -vqE 'ct state|iif \"lo\"|l4proto'; then"
       " echo 'an accept rule before the SSH drop could admit SSH'; exit 1; fi; echo 'SSH: admin sources only, then drop'"),
    _c("GC-FW-04", "outbound traffic filtered (default deny; only declared destinations)", 3, "4.3.8",
       "egress_probe"),
    _c("GC-AUD-01", "auditd installed with the project's rules", 3, "6.2.1.1",
       "dpkg -s auditd >/dev/null 2>&1 || { echo 'auditd not installed'; exit 1; };"
       " n=$(grep -c '^-' /etc/audit/rules.d/50-gcloudctl.rules 2>/dev/null || echo 0); echo \"$n audit rules on disk\"; [ $n -ge 10 ]"),
    _c("GC-AUD-02", "audit rules loaded in the kernel", 3, "6.2.3.20",
       "if in_container; then echo 'kernel audit is shared with the machine; not applicable in a namespace container'; exit 3; fi;"
       " auditctl -l | tee /dev/stderr | grep -q gcloudctl"),
    _c("GC-UPD-01", "unattended security upgrades enabled", 3, "1.2.2.1",
       "dpkg -s unattended-upgrades >/dev/null 2>&1 || { echo 'not installed'; exit 1; };"
       " apt-config dump | grep -E 'APT::Periodic::Unattended-Upgrade \"1\"'"),
    _c("GC-TIME-01", "chrony configured with the platform's NTP servers", 3, "2.3.1.1",
       "dpkg -s chrony >/dev/null 2>&1 || exit 1; grep -hs '^server ' /etc/chrony/sources.d/gcloudctl.sources | head -3 | grep -q server"),
    _c("GC-TIME-02", "chronyd running", 3, "2.3.3.3",
       "b=$(awk '/CapBnd/ {print $2}' /proc/1/status); if [ $(( (0x$b >> 25) & 1 )) -eq 0 ]; then"
       " echo 'no CAP_SYS_TIME here: the clock belongs to the machine; not applicable'; exit 3; fi;"
       " systemctl is-active chrony"),
    _c("GC-AUD-03", "audit configuration immutable until reboot (-e 2)", 4, "6.2.3.20",
       "grep -hs '^-e 2' /etc/audit/rules.d/99-gcloudctl-finalize.rules || exit 1"),
    _c("GC-LOG-03", "logs kept at least 6 months", 4, "6.1.1.3", "retention_ok 182"),
    _c("GC-LOG-04", "every log line forwarded to the central log host", 3, "6.1.1.2",
       "f=/etc/rsyslog.d/60-gcloudctl-forward.conf; [ -f $f ] || { echo 'no forwarding to a central log host'; exit 1; };"
       " t=$(grep -o 'target=\"[^\"]*\"' $f | cut -d'\"' -f2); p=$(grep -o 'port=\"[0-9]*\"' $f | cut -d'\"' -f2);"
       " pr=$(grep -o 'protocol=\"[a-z]*\"' $f | cut -d'\"' -f2); echo \"central log host $t:$p/$pr\";"
       " systemctl is-active rsyslog >/dev/null || { echo 'rsyslog not running'; exit 1; };"
       " [ \"$(sd_val systemd/journald.conf ForwardToSyslog)\" = yes ] || { echo 'journald does not hand lines to rsyslog'; exit 1; };"
       " logger -t gcloudctl-audit \"forwarding probe $$\"; if [ \"$pr\" = udp ]; then"
       " echo 'udp: delivery cannot be observed from the host; not applicable here (the receiver is the evidence)'; exit 3; fi;"
       " case $t in *:*) d=\"[$t]\";; *) d=$t;; esac;"
       " for i in 1 2 3 4 5 6 7 8 9 10; do c=$(ss -Htn state established \"( dst $d and dport = :$p )\" 2>/dev/null);"
       " [ -n \"$c\" ] && { echo \"rsyslog connected: $c\"; exit 0; }; sleep 1; done; echo 'no connection to the central log host'; exit 1"),
    _c("GC-LOG-05", "logs kept at least 3 months", 3, "6.1.1.3", "retention_ok 91"),
)

BY_ID = {c.id: c for c in CONTROLS}


def controls_for_level(level: int) -> list[Control]:
    """The controls a profile Ln requires (cumulative)."""
    return [c for c in CONTROLS if c.level <= level]
