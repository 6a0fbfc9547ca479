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
    _c("GC-ACC-05", "password ageing for new accounts (max 365, min 1, warn 7)", 2, "5.4.1.1",
       "a=$(def_val PASS_MAX_DAYS); b=$(def_val PASS_MIN_DAYS); c=$(def_val PASS_WARN_AGE);"
       " echo \"max=$a min=$b warn=$c\"; [ \"$a\" -le 365 ] && [ \"$b\" -ge 1 ] && [ \"$c\" -ge 7 ]"),
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
       "c=$(cat /etc/systemd/journald.conf /etc/systemd/journald.conf.d/*.conf 2>/dev/null);"
       " echo \"$c\" | grep -E '^(Storage|Compress)='; echo \"$c\" | grep -q '^Storage=persistent'"
       " && echo \"$c\" | grep -q '^Compress=yes'"),
    _c("GC-LOG-02", "log retention at least the level's minimum", 2, "6.1.1.3",
       "grep -hs '^MaxRetentionSec=' /etc/systemd/journald.conf.d/*.conf | tail -1 | grep -E '=[0-9]+(month|day)'"),
    # --- level 3+: firewall, audit, updates, time ------------------------------------------
    _c("GC-FW-01", "nftables default-deny inbound, enabled at boot", 3, "4.3.8",
       "systemctl is-enabled nftables >/dev/null 2>&1 || { echo 'nftables not enabled'; exit 1; };"
       " nft list chain inet gcloudctl input 2>/dev/null | grep -E 'policy drop' || exit 1"),
    _c("GC-FW-02", "loopback and established traffic allowed, SSH reachable", 3, "4.3.4",
       "r=$(nft list chain inet gcloudctl input 2>/dev/null); echo \"$r\" | grep -E 'iif \"lo\" accept|tcp dport 22'"
       " && echo \"$r\" | grep -q 'ct state established,related accept'"),
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
    _c("GC-LOG-03", "logs kept at least 6 months", 4, "6.1.1.3",
       "grep -hs '^MaxRetentionSec=' /etc/systemd/journald.conf.d/*.conf | tail -1 | grep -E '=(6|7|8|9|1[0-9])month'"),
)

BY_ID = {c.id: c for c in CONTROLS}


def controls_for_level(level: int) -> list[Control]:
    """The controls a profile Ln requires (cumulative)."""
    return [c for c in CONTROLS if c.level <= level]
