"""The sealed evidence of an acceptance run: one tarball, reports/evidence-<date>-<commit>.tar.gz,
holding the run's reports and facts (the compose configuration, the images, the commit), a
MANIFEST.sha256 in sha256sum's format over every other member, and either the manifest's OpenSSH
signature (MANIFEST.sha256.sig, namespace tse-evidence) or a note, UNSIGNED, saying no key was set.

`write_bundle` makes it (the sign-off calls it at the end of a run), `verify_bundle` checks one
without extracting anything to disk (`stackctl verify-evidence`), `redact` and
`redact_compose_config` keep passwords out of the facts. Plain functions; signing and checking run
ssh-keygen (package openssh-client)."""
from __future__ import annotations

import gzip
import hashlib
import io
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath

import yaml

NAMESPACE = "tse-evidence"
MANIFEST = "MANIFEST.sha256"
SIGNATURE = MANIFEST + ".sig"
UNSIGNED = "UNSIGNED"
RESERVED = (MANIFEST, SIGNATURE, UNSIGNED)
SIGNING_KEY_ENV = "TSE_EVIDENCE_SIGNING_KEY"    # the run's signing key (read by the caller)
ALLOWED_SIGNERS_ENV = "TSE_ALLOWED_SIGNERS"     # stackctl verify-evidence's default --allowed-signers
UNSIGNED_NOTE = (f"unsigned: no signing key was configured for this run; set {SIGNING_KEY_ENV} to an OpenSSH "
                 f"private key without passphrase (ssh-keygen -t ed25519 -N '' -f KEY) to sign the next bundles\n")
MASK = "********"
MIN_SECRET_LENGTH = 4            # shorter values would mask ordinary words
MIN_FOUND_LENGTH = 8             # a secret-named value masked elsewhere too (not `true`, `redis`, ...)
SECRET_NAME = re.compile(r"PASSWORD|SECRET|TOKEN|KEY", re.IGNORECASE)
MANIFEST_LINE = re.compile(r"([0-9a-f]{64})  (\S(?:.*\S)?)")
SSH_KEYGEN_TIMEOUT = 30


class BundleError(Exception):
    """The bundle cannot be written as asked (signing failed, a bad member name); the message says
    what and the remedy."""


@dataclass
class Bundle:
    path: Path
    signed: bool
    members: list[str]           # in the tarball's order


@dataclass
class Verification:
    ok: bool
    lines: list[str]             # every finding, good or bad, in the order checked
    signer: str | None = None    # the principal of a good signature
    failures: list[str] = field(default_factory=list)   # the lines that make it not ok

    def note(self, line: str) -> None:
        self.lines.append(line)

    def fail(self, line: str) -> None:
        self.lines.append(line)
        self.failures.append(line)
        self.ok = False


# --- redaction ---------------------------------------------------------------------------------------

def redact(text: str, secrets: list[str]) -> str:
    """`text` with every occurrence of each secret (of MIN_SECRET_LENGTH characters or more) masked."""
    # Longest first: a secret containing another is masked whole, not left in pieces.
    for secret in sorted({s for s in secrets if s and len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text


def redact_compose_config(config_yaml: str, secrets: list[str]) -> str:
    """`docker compose config`'s output with the values of secret-named variables (PASSWORD, SECRET,
    TOKEN or KEY in the name, any case) masked wherever they are set (environment, build args), and
    every secret value masked wherever it appears. The values found under secret names count as
    secrets too, so a password interpolated into a command is masked as well."""
    try:
        document = yaml.safe_load(config_yaml)
    except yaml.YAMLError:
        document = None
    if not isinstance(document, (dict, list)):
        return _redact_config_text(config_yaml, secrets)
    found: list[str] = []
    masked = _mask_named(document, found)
    masked = _mask_values(masked, [*secrets, *_long(found)])
    return yaml.safe_dump(masked, sort_keys=False, default_flow_style=False, width=float("inf"), allow_unicode=True)


def _mask_named(node, found: list[str]):
    """`node` with the values of secret-named keys (`NAME: value` and `NAME=value` items) masked;
    the values masked are added to `found`."""
    if isinstance(node, dict):
        masked = {}
        for key, value in node.items():
            if SECRET_NAME.search(str(key)) and _scalar(value) and str(value):
                found.append(str(value))
                value = MASK
            masked[key] = _mask_named(value, found)
        return masked
    if isinstance(node, list):
        return [_mask_named(_mask_assignment(item, found), found) for item in node]
    return node


def _scalar(value) -> bool:
    return isinstance(value, (str, int, float)) and not isinstance(value, bool)


def _long(values: list[str]) -> list[str]:
    return [value for value in values if len(value) >= MIN_FOUND_LENGTH]


def _mask_assignment(item, found: list[str]):
    """A list's `NAME=value` item (environment or build args in list form), its value masked when
    the name is a secret's."""
    if isinstance(item, str) and "=" in item:
        name, value = item.split("=", 1)
        if SECRET_NAME.search(name) and value:
            found.append(value)
            return f"{name}={MASK}"
    return item


def _mask_values(node, secrets: list[str]):
    """Every string in `node` (keys too) with the secrets masked."""
    if isinstance(node, dict):
        return {_mask_values(k, secrets): _mask_values(v, secrets) for k, v in node.items()}
    if isinstance(node, list):
        return [_mask_values(item, secrets) for item in node]
    return redact(node, secrets) if isinstance(node, str) else node


def _redact_config_text(text: str, secrets: list[str]) -> str:
    """For a configuration that is not YAML after all: `NAME: value` and `NAME=value` masked line by line."""
    found = []
    pattern = re.compile(r"^(\s*-?\s*[\"']?([\w.-]+)[\"']?\s*[:=]\s*)(\S.*)$")
    lines = []
    for line in text.splitlines(keepends=True):
        match = pattern.match(line.rstrip("\n"))
        if match and SECRET_NAME.search(match.group(2)):
            found.append(match.group(3).strip("\"'"))
            line = match.group(1) + MASK + ("\n" if line.endswith("\n") else "")
        lines.append(line)
    return redact("".join(lines), [*secrets, *_long(found)])


# --- writing -----------------------------------------------------------------------------------------

def bundle_name(when: datetime, commit: str) -> str:
    """evidence-<UTC time>-<short commit>.tar.gz; the commit `nogit` when unknown, `-dirty` when the
    checkout had uncommitted changes (as the sign-off's commit fact says)."""
    moment = when if when.tzinfo else when.replace(tzinfo=timezone.utc)
    stamp = moment.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"evidence-{stamp}-{_safe_commit(commit)}.tar.gz"


def _safe_commit(commit: str) -> str:
    match = re.match(r"\s*([0-9a-fA-F]{4,40})\b", commit or "")
    if match is None:
        return "nogit"
    return match.group(1).lower()[:12] + ("-dirty" if "uncommitted" in commit or "dirty" in commit else "")


def write_bundle(reports: Path, files: list[Path], facts: dict[str, str], signing_key: Path | None,
                 when: datetime, commit: str) -> Bundle:
    """Seal `files` (stored under their names relative to `reports`) and `facts` (name -> text) in
    reports/evidence-<date>-<commit>.tar.gz, with the manifest and its signature (or the UNSIGNED
    note). Written to a temporary file and renamed: no half-written bundle is ever left. Raises
    BundleError (its message for the operator) when a file cannot be read, a name is unusable,
    signing fails or the bundle cannot be written."""
    contents = _contents(reports, files, facts)
    if signing_key is None:
        contents[UNSIGNED] = UNSIGNED_NOTE.encode()
    manifest = manifest_text(contents).encode()
    sealed = {MANIFEST: manifest}
    if signing_key is not None:
        sealed[SIGNATURE] = sign_manifest(manifest, Path(signing_key))
    sealed.update(sorted(contents.items()))
    path = Path(reports) / bundle_name(when, commit)
    try:
        _write_tarball(path, sealed, when)
    except OSError as error:
        raise BundleError(f"evidence bundle: cannot write {path}: {error}") from None
    return Bundle(path=path, signed=signing_key is not None, members=list(sealed))


def _contents(reports: Path, files: list[Path], facts: dict[str, str]) -> dict[str, bytes]:
    """Member name -> bytes: the report files, then the facts; a name given twice is refused."""
    contents: dict[str, bytes] = {}
    named = [(_member_name(Path(reports), Path(f)), Path(f).read_bytes) for f in files]
    named += [(_checked_name(name), text.encode) for name, text in facts.items()]
    for name, read in named:
        if name in contents or name in RESERVED:
            raise BundleError(f"evidence bundle: member name {name!r} given twice or reserved ({', '.join(RESERVED)})")
        try:
            contents[name] = read()
        except OSError as error:
            raise BundleError(f"evidence bundle: cannot read {name}: {error}") from None
    return contents


def _member_name(reports: Path, path: Path) -> str:
    try:
        relative = path.resolve().relative_to(reports.resolve())
    except ValueError:
        relative = Path(path.name)   # a file from elsewhere: by its own name
    return _checked_name(relative.as_posix())


def _checked_name(name: str) -> str:
    """A member name the manifest can list and any tar reader extracts safely."""
    if not name or _unsafe_name(name) or any(c in name for c in "\n\r\\") or name != name.strip():
        raise BundleError(f"evidence bundle: unusable member name {name!r} (a plain relative path is needed)")
    return name


def _unsafe_name(name: str) -> str | None:
    """Why a tar member's name may not be read or extracted (absolute, `..`), or None."""
    if name.startswith("/") or PurePosixPath(name).is_absolute():
        return "an absolute path"
    if ".." in PurePosixPath(name).parts:
        return "a path containing '..'"
    return None


def manifest_text(contents: dict[str, bytes]) -> str:
    """sha256sum's output over the members, sorted by name: `<64 hex>  <name>` a line."""
    return "".join(f"{hashlib.sha256(data).hexdigest()}  {name}\n" for name, data in sorted(contents.items()))


def _write_tarball(path: Path, members: dict[str, bytes], when: datetime) -> None:
    """A gzipped tar of `members` in the given order, each mode 0644 and dated `when`, the same
    bytes for the same input (gzip's own header dated `when` too)."""
    mtime = int(when.timestamp())
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as raw:
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=mtime) as zipped:
                with tarfile.open(fileobj=zipped, mode="w", format=tarfile.PAX_FORMAT) as tar:
                    for name, data in members.items():
                        tar.addfile(_tar_info(name, len(data), mtime), io.BytesIO(data))
            raw.flush()
            os.fsync(raw.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _tar_info(name: str, size: int, mtime: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode, info.type = size, mtime, 0o644, tarfile.REGTYPE
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


# --- ssh-keygen --------------------------------------------------------------------------------------

def _ssh_keygen(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    """ssh-keygen without a terminal: a passphrase-protected key fails instead of prompting (no
    controlling terminal, no askpass program)."""
    program = shutil.which("ssh-keygen")
    if program is None:
        raise FileNotFoundError("ssh-keygen not found: install the package openssh-client (apt-get install "
                                "openssh-client)")
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "SSH_ASKPASS")}
    env["SSH_ASKPASS_REQUIRE"] = "never"
    return subprocess.run([program, *args], input=stdin if stdin is not None else b"", capture_output=True,
                          env=env, start_new_session=True, timeout=SSH_KEYGEN_TIMEOUT)


def _last_line(output: bytes) -> str:
    text = output.decode(errors="replace").replace("Enter passphrase:", "")
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "no message"


def sign_manifest(manifest: bytes, key: Path) -> bytes:
    """The manifest's signature (`ssh-keygen -Y sign -n tse-evidence`) with the private key `key`."""
    remedy = (f"set {SIGNING_KEY_ENV} to a readable OpenSSH private key without passphrase, "
              f"or unset it for an unsigned bundle")
    if not key.is_file():
        raise BundleError(f"evidence bundle: signing key {key} does not exist or is not a file; {remedy}")
    with tempfile.TemporaryDirectory(prefix="tse-evidence-") as folder:
        target = Path(folder) / MANIFEST
        target.write_bytes(manifest)
        try:
            done = _ssh_keygen("-Y", "sign", "-f", str(key), "-n", NAMESPACE, str(target))
        except (FileNotFoundError, subprocess.TimeoutExpired) as error:
            raise BundleError(f"evidence bundle: cannot sign with {key}: {error}") from None
        signature = target.with_name(SIGNATURE)
        if done.returncode != 0 or not signature.exists():
            raise BundleError(f"evidence bundle: signing with {key} failed ({_last_line(done.stderr)}); {remedy} "
                              f"(a key with a passphrase cannot sign unattended)")
        return signature.read_bytes()


# --- verification ------------------------------------------------------------------------------------

def verify_bundle(path: Path, allowed_signers: Path | None) -> Verification:
    """Check a bundle: its members against MANIFEST.sha256, and the manifest's signature against
    `allowed_signers` (ssh-keygen's allowed-signers format) when given. Nothing is extracted to
    disk; links, absolute paths and `..` are refused, not read."""
    found = Verification(ok=True, lines=[])
    try:
        members, refused = read_members(Path(path))
    except (OSError, EOFError, tarfile.TarError, gzip.BadGzipFile, ValueError) as error:
        found.fail(f"{path}: not a readable tar.gz ({error})")
        return found
    for line in refused:
        found.fail(line)
    _check_manifest(members, found)
    found.signer = _check_signature(members, allowed_signers, found)
    return found


def read_members(path: Path) -> tuple[dict[str, bytes], list[str]]:
    """The regular members of the tarball, name -> bytes, read in memory, and a finding for each
    member refused (a link, a device or folder, an absolute path, `..`, a name given twice)."""
    members, refused = {}, []
    with tarfile.open(path, mode="r:gz") as tar:
        for info in tar:
            why = _unsafe_name(info.name) or _not_regular(info)
            if why is None and info.name in members:
                why = "a second member of that name"
            if why is not None:
                refused.append(f"refused member {info.name}: {why}")
                continue
            members[info.name] = tar.extractfile(info).read()
    return members, refused


def _not_regular(info: tarfile.TarInfo) -> str | None:
    if info.issym() or info.islnk():
        return "a link"
    return None if info.isfile() else "not a regular file"


def parse_manifest(text: str) -> tuple[dict[str, str], list[str]]:
    """name -> sha256 from sha256sum's format, and a finding for each line that is not in it."""
    listed, problems = {}, []
    for number, line in enumerate(text.splitlines(), start=1):
        match = MANIFEST_LINE.fullmatch(line)
        if match is None:
            problems.append(f"{MANIFEST} line {number} is not `<sha256>  <name>`: {line[:80]!r}")
        elif match.group(2) in listed:
            problems.append(f"{MANIFEST} lists {match.group(2)} twice")
        else:
            listed[match.group(2)] = match.group(1)
    return listed, problems


def _check_manifest(members: dict[str, bytes], found: Verification) -> None:
    if MANIFEST not in members:
        found.fail(f"{MANIFEST} missing: the bundle's members cannot be checked")
        return
    try:
        listed, problems = parse_manifest(members[MANIFEST].decode())
    except UnicodeDecodeError:
        found.fail(f"{MANIFEST} is not text")
        return
    problems += [_differs(name, expected, members) for name, expected in listed.items()]
    problems += [f"extra member not in the manifest: {name}" for name in members
                 if name not in listed and name not in (MANIFEST, SIGNATURE)]
    for line in filter(None, problems):
        found.fail(line)
    if not any(problems):
        found.note(f"{len(listed)} members match {MANIFEST}")


def _differs(name: str, expected: str, members: dict[str, bytes]) -> str | None:
    """How a listed member differs from the manifest, or None."""
    if name not in members:
        return f"{name}: listed in the manifest but missing"
    found = hashlib.sha256(members[name]).hexdigest()
    return None if found == expected else f"{name}: changed (sha256 expected {expected}, found {found})"


def _check_signature(members: dict[str, bytes], allowed: Path | None, found: Verification) -> str | None:
    """The signer of a good signature, or None; the finding added to `found`."""
    if SIGNATURE not in members:
        _check_unsigned(members, allowed, found)
        return None
    if allowed is None:
        found.note("signed, but no allowed-signers file given: signature not checked (use --allowed-signers FILE)")
        return None
    if not Path(allowed).is_file():
        found.fail(f"allowed-signers file {allowed} does not exist: signature not checked")
        return None
    try:
        signer, finding = check_signature(members.get(MANIFEST, b""), members[SIGNATURE], Path(allowed))
    except (FileNotFoundError, subprocess.TimeoutExpired) as error:
        found.fail(f"signature not checked: {error}")
        return None
    (found.note if signer else found.fail)(finding)
    return signer


def _check_unsigned(members: dict[str, bytes], allowed: Path | None, found: Verification) -> None:
    if allowed is not None:
        found.fail(f"unsigned bundle; an allowed-signers file was given ({allowed})")
    elif UNSIGNED in members:
        found.note("unsigned (no signing key was configured for the run)")
    else:
        # write_bundle always writes one of the two: a signature may have been taken out.
        found.fail(f"neither {SIGNATURE} nor {UNSIGNED}: not as written (a signature removed?)")


def check_signature(manifest: bytes, signature: bytes, allowed: Path) -> tuple[str | None, str]:
    """(signer or None, finding) for the manifest's signature, against the allowed-signers file:
    ssh-keygen names the key's principal (find-principals), then checks the signature (verify)."""
    with tempfile.TemporaryDirectory(prefix="tse-evidence-") as folder:
        signature_file = Path(folder) / SIGNATURE
        signature_file.write_bytes(signature)
        found = _ssh_keygen("-Y", "find-principals", "-s", str(signature_file), "-f", str(allowed))
        principals = found.stdout.decode(errors="replace").split() if found.returncode == 0 else []
        if not principals:
            return None, f"signature does not match any key in {allowed}"
        for principal in principals:
            verified = _ssh_keygen("-Y", "verify", "-f", str(allowed), "-I", principal, "-n", NAMESPACE,
                                   "-s", str(signature_file), stdin=manifest)
            if verified.returncode == 0:
                return principal, f"signed by {principal}, good signature"
        return None, (f"signature by {', '.join(principals)} does not match {MANIFEST} (changed after signing) "
                      f"or not for namespace {NAMESPACE}: {_last_line(verified.stderr + verified.stdout)}")
