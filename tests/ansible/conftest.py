"""Test hosts for the Ansible roles: Debian root filesystems, each with sshd chrooted in its own network
namespace, so site.yml changes them and never the machine that runs the tests.

    .venv/bin/python -m pytest tests/ansible -q

How one host is made (needs root, debootstrap, iproute2, util-linux):
- `debootstrap --variant=minbase` builds a Debian root filesystem of this machine's release from the mirror
  apt uses here, once; it is cached as a tarball in /var/cache/aidetect (AIDETECT_TESTHOST_CACHE).
- `ip netns add` + a veth pair on a /30 of 10.231.x.0 join the host to this machine; nothing is routed on.
- `ip netns exec NS unshare --mount --uts --ipc --pid --fork --kill-child` starts a shell that unpacks the
  tarball onto a tmpfs, mounts a private /dev (tmpfs, device nodes, its own devpts) and a read-only /proc
  (sysctl writes fail rather than reach this kernel) and execs `chroot ROOT /usr/sbin/sshd -D`. All of it
  lives in that mount namespace only; killing the process group ends the PID namespace, sshd and the
  mounts with it. The tests read the host's files through /proc/<sshd pid>/root.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

SUITE_PACKAGES = [
    "openssh-server",
    "python3",
    "sudo",
    "iproute2",
    # What common_packages installs on a real host, present so the roles can configure it offline.
    "chrony",
    "nftables",
    "tzdata",
]
# The account site.yml logs in as, like a cloud image's default user: key login, passwordless sudo.
DEPLOY_USER = "deploy"
SUBNET_PREFIX = "10.231"

# Runs inside the host's new namespaces, as root of this machine; $1 is the (empty) mount point for the
# root filesystem, $2 the cached tarball. Everything it mounts exists in this mount namespace only.
_START_SSHD = r"""
set -eu
R=$1
# The root filesystem lives in memory: fast to unpack, and gone with the namespace, with nothing to delete.
mount -t tmpfs -o mode=755,size=1g tmpfs "$R"
tar --numeric-owner -C "$R" -xpf "$2"
echo "$HOST_NAME" > "$R/etc/hostname"
echo "$HOST_ADDRESS $HOST_NAME" >> "$R/etc/hosts"
mkdir -m 700 "$R/home/$LOGIN_USER/.ssh"
echo "$LOGIN_KEY" > "$R/home/$LOGIN_USER/.ssh/authorized_keys"
chroot "$R" chown -R "$LOGIN_USER:$LOGIN_USER" "/home/$LOGIN_USER/.ssh"
mount -t tmpfs -o mode=755,nosuid tmpfs "$R/dev"
for n in "null 1 3" "zero 1 5" "full 1 7" "random 1 8" "urandom 1 9" "tty 5 0"; do
  set -- $n; mknod -m 666 "$R/dev/$1" c "$2" "$3"
done
mkdir "$R/dev/pts" "$R/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,mode=620 devpts "$R/dev/pts"
ln -s pts/ptmx "$R/dev/ptmx"
# Read-only: a sysctl write from the roles fails instead of reaching this machine's kernel.
mount -t proc -o ro,nosuid,nodev,noexec proc "$R/proc"
hostname "$HOST_NAME"
exec chroot "$R" /usr/sbin/sshd -D -e -p 22
"""


def debian_release() -> str:
    """Codename of this machine's Debian release, from /etc/os-release."""
    for line in Path("/etc/os-release").read_text().splitlines():
        if line.startswith("VERSION_CODENAME="):
            return line.split("=", 1)[1].strip().strip('"')
    raise RuntimeError("no VERSION_CODENAME in /etc/os-release")


def apt_mirror(sources: dict[str, str], suite: str) -> str:
    """The first Debian archive URI apt uses for `suite`, from sources.list / *.sources texts by name."""
    for name, text in sorted(sources.items()):
        if name.endswith(".sources"):
            for stanza in text.split("\n\n"):
                fields = {}
                for line in stanza.splitlines():
                    if ":" in line and not line.lstrip().startswith("#"):
                        key, value = line.split(":", 1)
                        fields[key.strip().lower()] = value.split()
                enabled = fields.get("enabled", ["yes"]) != ["no"]
                if enabled and "deb" in fields.get("types", []) and suite in fields.get("suites", []):
                    return fields["uris"][0]
        elif name.endswith(".list"):
            for line in text.splitlines():
                words = line.split("#", 1)[0].split()
                if words[:1] == ["deb"]:
                    words = [w for w in words[1:] if not w.startswith("[")]
                    if len(words) >= 2 and words[1] == suite:
                        return words[0]
    raise RuntimeError(f"apt has no source for {suite}")


def system_apt_mirror(suite: str) -> str:
    if os.environ.get("AIDETECT_DEBIAN_MIRROR"):
        return os.environ["AIDETECT_DEBIAN_MIRROR"]
    paths = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    return apt_mirror({str(p): p.read_text() for p in paths if p.is_file()}, suite)


def _run(*argv: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(argv, check=True, capture_output=True, text=True, **kwargs)


def build_rootfs_tarball(cache_dir: Path, suite: str, mirror: str) -> Path:
    """Debootstrap once into a tarball; later calls (and concurrent ones, via a lock) reuse it."""
    # What goes into the image is part of the name, so changing it builds a new tarball.
    recipe = ",".join(sorted(SUITE_PACKAGES)) + Path(__file__).read_text().split("# image recipe")[1]
    tag = hashlib.sha256(recipe.encode()).hexdigest()[:8]
    tarball = cache_dir / f"testhost-rootfs-{suite}-{tag}.tar"
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache_dir / ".testhost.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if tarball.exists():
            return tarball
        work = cache_dir / f"build-{os.getpid()}"
        shutil.rmtree(work, ignore_errors=True)
        try:
            _run(
                "debootstrap", "--variant=minbase", f"--include={','.join(SUITE_PACKAGES)}",
                suite, str(work), mirror,
            )
            # image recipe
            _run("chroot", str(work), "useradd", "--create-home", "--shell", "/bin/bash", DEPLOY_USER)
            sudoers = work / "etc/sudoers.d" / DEPLOY_USER
            sudoers.write_text(f"{DEPLOY_USER} ALL=(ALL:ALL) NOPASSWD: ALL\n")
            sudoers.chmod(0o440)
            (work / "run/sshd").mkdir(parents=True, exist_ok=True)
            # As in container images: the login uid cannot be set here (read-only /proc), and a
            # required pam_loginuid would end every SSH session.
            pam_sshd = work / "etc/pam.d/sshd"
            pam_sshd.write_text(re.sub(r"^session\s+required\s+pam_loginuid.so",
                                       "session optional pam_loginuid.so", pam_sshd.read_text(), flags=re.M))
            # apt's downloaded packages are not needed on the hosts.
            shutil.rmtree(work / "var/cache/apt/archives", ignore_errors=True)
            partial = tarball.with_suffix(".partial")
            _run("tar", "--numeric-owner", "-C", str(work), "-cpf", str(partial), ".")
            os.replace(partial, tarball)
            # image recipe end
            for old in cache_dir.glob(f"testhost-rootfs-{suite}-*.tar"):
                if old != tarball:
                    old.unlink()
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return tarball


@dataclass
class TestHost:
    """One test host: its inventory name and group, how to reach it, and its files."""

    __test__ = False  # a data holder, not a test class

    name: str
    group: str
    mountpoint: Path
    address: str
    netns: str
    veth: str
    process: subprocess.Popen | None = None

    def file(self, path: str) -> Path:
        """A path on the host, seen from this machine through sshd's root (its mount namespace)."""
        return Path(f"/proc/{self.sshd_pid()}/root") / path.lstrip("/")

    def sshd_pid(self) -> int:
        # `ip netns exec` becomes unshare; its one child became sshd through sh's exec and chroot's.
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
        return int(children[0])


def _free_subnet(taken: set[int]) -> int:
    routes = _run("ip", "-4", "route", "show").stdout
    for third in range(0, 256):
        if third not in taken and f"{SUBNET_PREFIX}.{third}." not in routes:
            return third
    raise RuntimeError(f"no free /30 left in {SUBNET_PREFIX}.0.0/16")


def _wait_for_port(address: str, port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((address, port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def start_host(host: TestHost, tarball: Path, public_key: str, log: Path) -> None:
    """Wire the namespace, then unpack the root filesystem in it, authorise the key and start sshd."""
    gateway = host.address.rsplit(".", 1)[0] + ".1"
    _run("ip", "netns", "add", host.netns)
    _run("ip", "link", "add", host.veth, "type", "veth", "peer", "name", "eth0", "netns", host.netns)
    _run("ip", "addr", "add", f"{gateway}/30", "dev", host.veth)
    _run("ip", "link", "set", host.veth, "up")
    _run("ip", "-n", host.netns, "addr", "add", f"{host.address}/30", "dev", "eth0")
    _run("ip", "-n", host.netns, "link", "set", "eth0", "up")
    _run("ip", "-n", host.netns, "link", "set", "lo", "up")
    host.mountpoint.mkdir(parents=True)
    env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOST_NAME": host.name, "HOST_ADDRESS": host.address,
           "LOGIN_USER": DEPLOY_USER, "LOGIN_KEY": public_key.strip()}
    host.process = subprocess.Popen(
        ["ip", "netns", "exec", host.netns,
         "unshare", "--mount", "--uts", "--ipc", "--pid", "--fork", "--kill-child",
         "sh", "-c", _START_SSHD, "start-sshd", str(host.mountpoint), str(tarball)],
        env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True,
    )


def wait_for_host(host: TestHost, log: Path) -> None:
    try:
        _wait_for_port(host.address, 22, timeout=90)
    except OSError as exc:
        raise RuntimeError(f"sshd on {host.name} did not come up: {log.read_text()}") from exc


def stop_host(host: TestHost) -> None:
    """Kill the namespaces (the in-memory root filesystem and mounts go with them) and the netns (the veth
    goes with it)."""
    if host.process is not None:
        try:
            os.killpg(host.process.pid, 9)
        except ProcessLookupError:
            pass
        host.process.wait(timeout=10)
    subprocess.run(["ip", "netns", "delete", host.netns], capture_output=True)
    subprocess.run(["ip", "link", "delete", host.veth], capture_output=True)
    if host.mountpoint.exists() and not os.path.ismount(host.mountpoint):
        host.mountpoint.rmdir()


def remove_abandoned_hosts() -> None:
    """Stop the test hosts of runs that died without their teardown (killed pytest): the netns name
    carries the creating process id, so only hosts whose creator is gone are touched."""
    for line in _run("ip", "netns", "list").stdout.splitlines():
        match = re.match(r"aidt-(\d+)-(\d+)\b", line)
        if not match or Path(f"/proc/{match[1]}").exists():
            continue
        for pid in _run("ip", "netns", "pids", match[0]).stdout.split():
            try:
                os.kill(int(pid), 9)
            except ProcessLookupError:
                pass
        subprocess.run(["ip", "netns", "delete", match[0]], capture_output=True)
        subprocess.run(["ip", "link", "delete", f"aidt{match[1]}x{match[2]}"], capture_output=True)


def _can_make_test_hosts() -> str | None:
    if os.geteuid() != 0:
        return "test hosts need root (network namespaces, chroot)"
    for tool in ("debootstrap", "ip", "unshare", "chroot", "ssh", "ssh-keygen"):
        if shutil.which(tool) is None:
            return f"{tool} is missing: run scripts/setup-system.sh"
    return None


@pytest.fixture(scope="session")
def ssh_key(tmp_path_factory) -> Path:
    """A key pair for this test session only (never leaves the temporary directory)."""
    key = tmp_path_factory.mktemp("ssh") / "id_ed25519"
    _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "aidetect-testhost", "-f", str(key))
    return key


@pytest.fixture(scope="session")
def test_hosts(tmp_path_factory, ssh_key) -> Iterator[list[TestHost]]:
    """Two running test hosts: testhost-control in group control, testhost-worker in workers."""
    reason = _can_make_test_hosts()
    if reason:
        pytest.skip(reason)
    remove_abandoned_hosts()
    suite = debian_release()
    cache = Path(os.environ.get("AIDETECT_TESTHOST_CACHE", "/var/cache/aidetect"))
    tarball = build_rootfs_tarball(cache, suite, system_apt_mirror(suite))
    work = tmp_path_factory.mktemp("testhosts")
    hosts: list[TestHost] = []
    taken: set[int] = set()
    try:
        for name, group in (("testhost-control", "control"), ("testhost-worker", "workers")):
            third = _free_subnet(taken)
            taken.add(third)
            host = TestHost(
                name=name, group=group, mountpoint=work / name, address=f"{SUBNET_PREFIX}.{third}.2",
                netns=f"aidt-{os.getpid()}-{len(hosts)}", veth=f"aidt{os.getpid()}x{len(hosts)}",
            )
            hosts.append(host)
            start_host(host, tarball, ssh_key.with_suffix(".pub").read_text(), work / f"{name}-sshd.log")
        # Both unpack at once; then wait for each.
        for host in hosts:
            wait_for_host(host, work / f"{host.name}-sshd.log")
        yield hosts
    finally:
        for host in hosts:
            stop_host(host)
