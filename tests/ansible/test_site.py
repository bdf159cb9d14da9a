"""site.yml for real, against two test hosts (see conftest.py), twice: the second run must change nothing.

Steps that need the internet, systemd or this machine's kernel are turned off by the role variables in
TEST_VARS; everything else (users, sshd hardening, sysctl and chrony files, k3s config and units, the
ArgoCD root app) is written to the hosts and checked there.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ANSIBLE_DIR = Path(__file__).resolve().parents[2] / "ansible"
VENV_BIN = Path(sys.executable).parent
ADMIN = "aidetect-admin"
REPO_URL = "https://git.example.invalid/aidetect.git"

TEST_VARS = {
    # No mirror, no systemd, and this machine's kernel is not the hosts' to change.
    "common_install_packages": False,
    "common_manage_services": False,
    "common_apply_kernel_settings": False,
    "k3s_server_install": False,
    "k3s_server_manage_services": False,
    "k3s_agent_install": False,
    "k3s_agent_manage_services": False,
    "argocd_apply": False,
    "argocd_root_app_repo_url": REPO_URL,
}

RECAP = re.compile(r"^(?P<host>\S+)\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+"
                   r"unreachable=(?P<unreachable>\d+)\s+failed=(?P<failed>\d+)", re.M)


def parse_recap(output: str) -> dict[str, dict[str, int]]:
    """PLAY RECAP lines as {host: {ok, changed, unreachable, failed}}."""
    return {m["host"]: {k: int(m[k]) for k in ("ok", "changed", "unreachable", "failed")}
            for m in RECAP.finditer(output)}


def test_parse_recap_reads_every_host():
    out = ("PLAY RECAP ****\n"
           "testhost-control           : ok=31   changed=0    unreachable=0    failed=0    skipped=9\n"
           "testhost-worker            : ok=20   changed=3    unreachable=1    failed=2    skipped=4\n")
    assert parse_recap(out) == {
        "testhost-control": {"ok": 31, "changed": 0, "unreachable": 0, "failed": 0},
        "testhost-worker": {"ok": 20, "changed": 3, "unreachable": 1, "failed": 2},
    }


def write_inventory(path: Path, hosts, key: Path) -> Path:
    groups: dict = {"control": {"hosts": {}}, "workers": {"hosts": {}}, "gpu": {"hosts": {}}}
    for host in hosts:
        groups[host.group]["hosts"][host.name] = {"ansible_host": host.address, "ansible_user": "deploy"}
    admin_key = key.with_suffix(".pub").read_text().strip()
    inventory = {"all": {"children": groups, "vars": {
        **TEST_VARS,
        "common_users": [{"name": ADMIN, "groups": ["adm"], "ssh_keys": [admin_key]}],
        "ansible_ssh_private_key_file": str(key),
        "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
        "ansible_python_interpreter": "/usr/bin/python3",
    }}}
    path.write_text(yaml.safe_dump(inventory, sort_keys=False))
    return path


def run_site(inventory: Path, home: Path, token: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PATH": f"{VENV_BIN}:{os.environ['PATH']}",
        "ANSIBLE_CONFIG": str(ANSIBLE_DIR / "ansible.cfg"),
        # Everything the controller writes stays in the test's temporary directory.
        "ANSIBLE_HOME": str(home),
        "ANSIBLE_LOCAL_TEMP": str(home / "tmp"),
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(home / "cp"),
        "ANSIBLE_NOCOLOR": "1",
        "AIDETECT_K3S_TOKEN": token,
    }
    return subprocess.run(
        [str(VENV_BIN / "ansible-playbook"), "-i", str(inventory), "site.yml"],
        cwd=ANSIBLE_DIR, env=env, capture_output=True, text=True, timeout=400,
    )


def ssh(host, key: Path, user: str, command: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["ssh", "-i", str(key), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
         "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", f"{user}@{host.address}", command],
        capture_output=True, text=True, timeout=30,
    )


@pytest.fixture(scope="module")
def converged(test_hosts, ssh_key, tmp_path_factory):
    """Run site.yml twice; return both results, the hosts by group and the token used."""
    work = tmp_path_factory.mktemp("ansible")
    inventory = write_inventory(work / "inventory.yml", test_hosts, ssh_key)
    token = secrets.token_hex(24)
    first = run_site(inventory, work / "home", token)
    assert first.returncode == 0, first.stdout[-6000:] + first.stderr[-3000:]
    second = run_site(inventory, work / "home", token)
    assert second.returncode == 0, second.stdout[-6000:] + second.stderr[-3000:]
    return {"first": first, "second": second, "token": token, **{h.group: h for h in test_hosts}}


@pytest.mark.slow
def test_first_run_changes_both_hosts_and_second_run_changes_nothing(converged):
    first, second = parse_recap(converged["first"].stdout), parse_recap(converged["second"].stdout)
    assert set(first) == set(second) == {"testhost-control", "testhost-worker"}
    for host in first:
        assert first[host]["changed"] > 0, host
        assert first[host]["failed"] == first[host]["unreachable"] == 0, host
    assert {h: r["changed"] for h, r in second.items()} == {"testhost-control": 0, "testhost-worker": 0}, (
        converged["second"].stdout[-6000:]
    )


@pytest.mark.slow
def test_admin_user_exists_and_logs_in_with_its_key_and_sudo(converged, ssh_key):
    for host in (converged["control"], converged["workers"]):
        passwd = host.file("/etc/passwd").read_text()
        assert re.search(rf"^{ADMIN}:x:\d+:\d+:.*:/home/{ADMIN}:/bin/bash$", passwd, re.M), passwd
        sudo_group = re.search(r"^sudo:x:\d+:(.*)$", host.file("/etc/group").read_text(), re.M)
        assert ADMIN in sudo_group.group(1).split(",")
        keys = host.file(f"/home/{ADMIN}/.ssh/authorized_keys")
        assert oct(keys.stat().st_mode & 0o777) == "0o600"
        assert ssh_key.with_suffix(".pub").read_text().strip() in keys.read_text()
        login = ssh(host, ssh_key, ADMIN, "id -un && sudo -n id -u")
        assert login.returncode == 0, login.stderr
        assert login.stdout.split() == [ADMIN, "0"]


@pytest.mark.slow
def test_sshd_effective_config_is_hardened(converged, ssh_key):
    host = converged["control"]
    result = ssh(host, ssh_key, "deploy", "sudo -n /usr/sbin/sshd -T")
    assert result.returncode == 0, result.stderr
    effective = dict(line.split(" ", 1) for line in result.stdout.splitlines() if " " in line)
    assert effective["passwordauthentication"] == "no"
    assert effective["permitrootlogin"] == "no"
    assert effective["x11forwarding"] == "no"
    assert effective["maxauthtries"] == "3"


@pytest.mark.slow
def test_kernel_and_time_settings_are_written_not_applied_here(converged):
    host = converged["workers"]
    sysctl = host.file("/etc/sysctl.d/60-aidetect.conf").read_text()
    assert "net.ipv4.ip_forward = 1" in sysctl
    assert "net.bridge.bridge-nf-call-iptables = 1" in sysctl
    modules = host.file("/etc/modules-load.d/aidetect.conf").read_text()
    assert modules.split()[-2:] == ["overlay", "br_netfilter"]
    assert "pool 0.debian.pool.ntp.org iburst" in host.file("/etc/chrony/chrony.conf").read_text()
    assert os.readlink(host.file("/etc/localtime")) == "/usr/share/zoneinfo/Etc/UTC"
    # Written and checked by `nft -c` in the host's own network namespace, never loaded.
    ruleset = host.file("/etc/nftables.conf").read_text()
    assert "policy drop;" in ruleset and "tcp dport { 22 } accept" in ruleset
    assert "ip saddr @cluster_v4 tcp dport { 6443, 10250 } accept" in ruleset
    # The machine running the tests is untouched.
    assert not Path("/etc/sysctl.d/60-aidetect.conf").exists()
    assert not Path("/etc/rancher").exists()


@pytest.mark.slow
def test_k3s_server_and_agent_configs_join_the_same_cluster(converged):
    control, worker = converged["control"], converged["workers"]
    server = yaml.safe_load(control.file("/etc/rancher/k3s/config.yaml").read_text())
    agent = yaml.safe_load(worker.file("/etc/rancher/k3s/config.yaml").read_text())
    assert server["token"] == agent["token"] == converged["token"]
    assert server["cluster-init"] is True and "server" not in server
    assert server["node-ip"] == control.address and control.address in server["tls-san"]
    assert agent["server"] == f"https://{control.address}:6443"
    assert agent["node-ip"] == worker.address
    assert oct(control.file("/etc/rancher/k3s/config.yaml").stat().st_mode & 0o777) == "0o600"
    server_unit = control.file("/etc/systemd/system/k3s.service").read_text()
    assert "ExecStart=/usr/local/bin/k3s server" in server_unit
    unit = worker.file("/etc/systemd/system/k3s-agent.service").read_text()
    assert "ExecStart=/usr/local/bin/k3s agent" in unit
    assert control.file("/var/lib/rancher/k3s/server/manifests").is_dir()


@pytest.mark.slow
def test_argocd_root_app_points_at_gitops(converged):
    control = converged["control"]
    app = yaml.safe_load(control.file("/var/lib/aidetect/argocd/root-app.yaml").read_text())
    assert app["kind"] == "Application" and app["metadata"]["namespace"] == "argocd"
    assert app["spec"]["source"] == {
        "repoURL": REPO_URL, "targetRevision": "main", "path": "gitops/clusters/production",
    }
    assert app["spec"]["syncPolicy"]["automated"] == {"prune": True, "selfHeal": True}
    assert not converged["workers"].file("/var/lib/aidetect/argocd").exists()
