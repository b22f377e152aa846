"""Running the watcher at boot: the systemd unit ``photoguard service install`` writes, and the home's
ownership (inbox writable by the staff group, outbox readable by the manager's group).

The unit is rendered from a ``ServiceSpec`` as plain text, so it can be written to any folder and
checked with ``systemd-analyze verify`` without a running systemd.
"""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

SYSTEM_UNIT_DIR = Path("/etc/systemd/system")
MARK = "# Written by `photoguard service install`."
INBOX_MODE = 0o2770  # setgid: everything dropped in belongs to the staff group


class ServiceError(Exception):
    """The service cannot be installed or changed; the message says what to do."""


@dataclass(frozen=True)
class ServiceSpec:
    home: Path
    executable: Path
    user: str
    group: str  # the service's group: files it creates (outbox, review) belong to it
    staff_group: str | None = None  # owns inbox/ (setgid, group-writable)
    poll: bool = False
    name: str = "photoguard"

    @property
    def unit_name(self) -> str:
        return f"{self.name}.service"


def unit_path(name: str, unit_dir: str | Path | None = None) -> Path:
    """Where the unit called ``name`` is (or would be) written: systemd's folder unless told otherwise."""
    return Path(unit_dir or SYSTEM_UNIT_DIR) / f"{name}.service"


def _quote(word: str) -> str:
    """A path as one word of a unit file: '%' escaped, quoted if it has spaces or quotes."""
    word = word.replace("%", "%%")
    if any(c.isspace() or c in "\"'\\;" for c in word):
        return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return word


def _under(path: Path, *roots: str) -> bool:
    return any(path == Path(r) or Path(r) in path.parents for r in roots)


def render_unit(spec: ServiceSpec) -> str:
    home = _quote(str(spec.home))
    command = [_quote(str(spec.executable)), "watch", "--home", home] + (["--poll"] if spec.poll else [])
    # ProtectHome=yes would hide the program, its Python or the home if one lives under /home.
    homes = ("/home", "/root", "/run/user")
    under_home = any(_under(p, *homes) for p in [spec.home, *program_files(spec.executable)])
    after = "local-fs.target remote-fs.target network-online.target" if spec.poll else "local-fs.target"
    lines = [
        MARK,
        "# Change it by running that command again (or `photoguard service uninstall`), not by hand.",
        "",
        "[Unit]",
        f"Description=PhotoGuard watcher for {spec.home.as_posix().replace('%', '%%')}",
        f"After={after}",
        *(["Wants=network-online.target"] if spec.poll else []),
        f"RequiresMountsFor={home}",
        "",
        "[Service]",
        "Type=simple",
        f"User={spec.user}",
        f"Group={spec.group}",
        # To read (and move out) what staff drop in inbox/.
        *([f"SupplementaryGroups={spec.staff_group}"] if spec.staff_group and spec.staff_group != spec.group else []),
        f"WorkingDirectory={str(spec.home).replace('%', '%%')}",
        f"ExecStart={' '.join(command)}",
        "Environment=PYTHONUNBUFFERED=1",
        # Files it makes are never readable by other accounts; the group (the manager's) may read.
        "UMask=0027",
        "Restart=on-failure",
        "RestartSec=10",
        # SIGTERM: the watcher stops taking photos and finishes those in hand. Anything still running
        # after TimeoutStopSec is killed, which is safe: the journal resumes it at the next start.
        "KillSignal=SIGTERM",
        "KillMode=mixed",
        "TimeoutStopSec=90",
        "SuccessExitStatus=143",
        "",
        "# Hardening: it reads its program, writes only its home, and never uses the network.",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "PrivateDevices=yes",
        "ProtectSystem=strict",
        f"ProtectHome={'read-only' if under_home else 'yes'}",
        f"ReadWritePaths={home}",
        "ProtectKernelTunables=yes",
        "ProtectKernelModules=yes",
        "ProtectKernelLogs=yes",
        "ProtectControlGroups=yes",
        "ProtectClock=yes",
        "ProtectHostname=yes",
        "RestrictRealtime=yes",
        "RestrictNamespaces=yes",
        "LockPersonality=yes",
        "SystemCallArchitectures=native",
        "CapabilityBoundingSet=",
        # Worker processes talk over local pipes only. (A network share is mounted by the kernel,
        # so --poll on a share still works.) Not RestrictSUIDSGID: the inbox is a setgid folder.
        "RestrictAddressFamilies=AF_UNIX",
        "IPAddressDeny=any",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
    ]
    return "\n".join(lines) + "\n"


def find_executable(given: str | Path | None = None) -> Path:
    """The installed ``photoguard`` program the service will run (absolute, symlinks resolved)."""
    if given is not None:
        path = Path(given)
    else:
        argv0 = Path(sys.argv[0])
        if argv0.name == "photoguard" and argv0.exists():
            path = argv0
        else:
            found = shutil.which("photoguard")
            if found is None:
                raise ServiceError("cannot find the installed `photoguard` program. Install it first "
                                   "(see the README: uv tool install), or name it with --executable.")
            path = Path(found)
    path = path.expanduser().absolute().resolve()
    if not path.is_file() or not os.access(path, os.X_OK):
        raise ServiceError(f"{path} is not an executable `photoguard` program. Name the installed one with --executable.")
    check_executable(path)
    return path


SYSTEM_INSTALL = ("sudo env UV_TOOL_DIR=/opt/photoguard UV_TOOL_BIN_DIR=/usr/local/bin uv tool install . "
                  "--python /usr/bin/python3 --constraints deploy/constraints.txt --overrides deploy/overrides.txt")


def program_files(path: Path) -> list[Path]:
    """The program and everything it needs to start: the Python named on its first line (``#!``),
    with every link on the way to the real file (a tool's Python is often a link into a home folder)."""
    chain = [path]
    try:
        with open(path, "rb") as fh:
            first = fh.readline(512)
    except OSError:
        return chain
    if first.startswith(b"#!"):
        words = first[2:].decode("utf-8", "replace").split()
        interpreter = Path(words[0]) if words and words[0].startswith("/") else None
        seen = 0
        while interpreter is not None and seen < 40:
            chain.append(interpreter)
            seen += 1
            if not interpreter.is_symlink():
                break
            interpreter = (interpreter.parent / os.readlink(interpreter)).absolute()
    return chain


def check_executable(path: Path) -> None:
    """Refuse programs the service cannot rely on: in root's home, or in a temporary folder."""
    temps = {"/tmp", "/var/tmp", "/dev/shm", tempfile.gettempdir()}
    for part in program_files(path):
        what = "" if part == path else f" (it runs {part})"
        if _under(part, "/root"):
            raise ServiceError(
                f"{path}{what} is inside root's home folder, where the service's account cannot run it. Install "
                f"PhotoGuard for the whole computer first: {SYSTEM_INSTALL}, then run: sudo /usr/local/bin/photoguard "
                "service install ...")
        if _under(part, *temps):
            raise ServiceError(
                f"{path}{what} is in a temporary folder, which may be emptied at the next start. Install PhotoGuard "
                f"in a lasting place first: {SYSTEM_INSTALL}")


def user_can_run(path: Path, user: str) -> bool:
    """Whether ``user`` may reach and execute ``path`` (every folder above it searchable)."""
    pw = pwd.getpwnam(user)
    if pw.pw_uid == 0:
        return True
    gids = {pw.pw_gid} | {g.gr_gid for g in grp.getgrall() if user in g.gr_mem}

    def allowed(p: Path, bit_user: int, bit_group: int, bit_other: int) -> bool:
        st = p.stat()
        if st.st_uid == pw.pw_uid:
            return bool(st.st_mode & bit_user)
        if st.st_gid in gids:
            return bool(st.st_mode & bit_group)
        return bool(st.st_mode & bit_other)

    for folder in reversed(path.parents):
        if not allowed(folder, stat.S_IXUSR, stat.S_IXGRP, stat.S_IXOTH):
            return False
    return allowed(path, stat.S_IXUSR, stat.S_IXGRP, stat.S_IXOTH) and allowed(path, stat.S_IRUSR, stat.S_IRGRP, stat.S_IROTH)


def make_spec(home: Path, user: str | None, staff_group: str | None, manager_group: str | None,
              poll: bool, executable: Path, name: str = "photoguard") -> ServiceSpec:
    """Check the accounts and groups exist and put the service's settings together."""
    if user is None:
        owner = home.stat().st_uid
        if owner == 0:
            raise ServiceError(f"{home} belongs to root; say which account runs PhotoGuard with --user "
                               "(make one with: sudo adduser --system --group photoguard).")
        user = pwd.getpwuid(owner).pw_name
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        raise ServiceError(f"there is no account '{user}' on this computer. Make it with: "
                           f"sudo adduser --system --group {user}")
    if pw.pw_uid == 0:
        raise ServiceError("PhotoGuard must not run as root. Give another account with --user "
                           "(make one with: sudo adduser --system --group photoguard).")
    for group in (staff_group, manager_group):
        if group is not None:
            try:
                grp.getgrnam(group)
            except KeyError:
                raise ServiceError(f"there is no group '{group}' on this computer. Make it with: sudo addgroup {group}")
    group = manager_group or grp.getgrgid(pw.pw_gid).gr_name
    for part in program_files(executable):
        if part.exists() and not user_can_run(part, user):
            what = "" if part == executable else f" (it runs {part})"
            raise ServiceError(f"the account '{user}' cannot run {executable}{what}: a folder above it is closed to "
                               f"it. Install PhotoGuard where every account can run it: {SYSTEM_INSTALL}")
    return ServiceSpec(home=home, executable=executable, user=user, group=group, staff_group=staff_group,
                       poll=poll, name=name)


@dataclass(frozen=True)
class OwnershipStep:
    path: Path
    owner: str
    group: str
    mode: int | None  # None: keep
    recursive: bool

    def describe(self) -> str:
        mode = f", mode {self.mode:04o}" if self.mode is not None else ""
        return f"{self.path}{' and everything in it' if self.recursive else ''}: owner {self.owner}, group {self.group}{mode}"


def ownership_plan(spec: ServiceSpec, channels: tuple[str, ...]) -> list[OwnershipStep]:
    """The whole home to the service's account; inbox/ to the staff group (setgid, group-writable);
    the outbox to the service's group (the manager's), readable by it."""
    home = spec.home
    steps = [OwnershipStep(home, spec.user, spec.group, None, True)]
    if spec.staff_group:
        steps.append(OwnershipStep(home / "inbox", spec.user, spec.staff_group, INBOX_MODE, False))
    steps.append(OwnershipStep(home / "outbox", spec.user, spec.group, 0o750, False))
    steps += [OwnershipStep(home / "outbox" / c, spec.user, spec.group, 0o750, False) for c in channels]
    return steps


def apply_ownership(steps: list[OwnershipStep]) -> None:
    for step in steps:
        uid, gid = pwd.getpwnam(step.owner).pw_uid, grp.getgrnam(step.group).gr_gid
        if step.recursive:
            for folder, dirs, files in os.walk(step.path):
                for name in [*dirs, *files]:
                    os.chown(os.path.join(folder, name), uid, gid, follow_symlinks=False)
        os.chown(step.path, uid, gid)
        if step.mode is not None:
            os.chmod(step.path, step.mode)
    # Files already in the inbox belong to the staff group too, so the service can read them.
    for step in steps:
        if step.mode == INBOX_MODE:
            gid = grp.getgrnam(step.group).gr_gid
            for folder, dirs, files in os.walk(step.path):
                for name in dirs:
                    os.chown(os.path.join(folder, name), -1, gid, follow_symlinks=False)
                    os.chmod(os.path.join(folder, name), INBOX_MODE)
                for name in files:
                    os.chown(os.path.join(folder, name), -1, gid, follow_symlinks=False)


def write_unit(spec: ServiceSpec, unit_dir: Path) -> Path:
    """Write the unit file complete (temporary file, then renamed), refusing to replace a unit
    PhotoGuard did not write."""
    unit_dir.mkdir(parents=True, exist_ok=True)
    path = unit_dir / spec.unit_name
    if path.exists() and MARK not in path.read_text(encoding="utf-8", errors="replace"):
        raise ServiceError(f"{path} exists and was not written by PhotoGuard. Move it away (or choose another "
                           "name with --name) and try again.")
    temp = path.with_name(f".{spec.unit_name}.new")
    temp.write_text(render_unit(spec), encoding="utf-8")
    os.chmod(temp, 0o644)
    os.replace(temp, path)
    return path


def systemd_running() -> bool:
    return Path("/run/systemd/system").is_dir() and shutil.which("systemctl") is not None


def systemctl(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["systemctl", *args], capture_output=True, text=True)


def verify_unit(path: Path) -> str | None:
    """``systemd-analyze verify`` on the unit: None when it is fine or the tool is missing, else its complaint."""
    tool = shutil.which("systemd-analyze")
    if tool is None:
        return None
    done = subprocess.run([tool, "verify", str(path)], capture_output=True, text=True)
    text = (done.stdout + done.stderr).strip()
    return text if done.returncode != 0 or path.name in text else None


def read_unit_home(path: Path) -> str | None:
    """The home a written unit watches (from its ExecStart), for `service status`."""
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if line.startswith("ExecStart="):
            words = line.split(" --home ", 1)
            if len(words) == 2:
                rest = words[1]
                if rest.startswith('"'):
                    return rest[1:].split('"', 1)[0].replace('\\"', '"').replace("%%", "%")
                return rest.split(" ", 1)[0].replace("%%", "%")
    return None


def remove_unit(path: Path) -> None:
    if MARK not in path.read_text(encoding="utf-8", errors="replace"):
        raise ServiceError(f"{path} was not written by PhotoGuard; it is left as it is.")
    path.unlink()
