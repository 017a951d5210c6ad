"""A run's evidence bundle (steps/report/bundle.py): written, it verifies; a member changed, added
or taken out fails naming it; signed with an OpenSSH key it verifies against an allowed-signers file
holding that key and no other; the compose configuration it carries keeps no password; and
`stackctl verify-evidence` says so by its exit code."""
from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import tarfile
from datetime import datetime, timezone
from pathlib import Path

import pytest

from steps.report import bundle
from steps.report.bundle import BundleError, redact, redact_compose_config, verify_bundle, write_bundle

ROOT = Path(__file__).resolve().parents[2]
WHEN = datetime(2025, 3, 4, 5, 6, 7, tzinfo=timezone.utc)
needs_ssh_keygen = pytest.mark.skipif(not bundle.shutil.which("ssh-keygen"), reason="ssh-keygen (openssh-client)")


@pytest.fixture
def reports(tmp_path) -> Path:
    folder = tmp_path / "reports"
    folder.mkdir()
    (folder / "acceptance.html").write_text("<html>BDD criterion: PASSED</html>\n")
    (folder / "checklist.md").write_text("# Checklist\n- 1.1 passed\n")
    (folder / "junit.xml").write_text("<testsuites/>\n")
    return folder


def _files(reports: Path) -> list[Path]:
    return [reports / name for name in ("acceptance.html", "checklist.md", "junit.xml")]


def _write(reports: Path, key: Path | None = None) -> bundle.Bundle:
    return write_bundle(reports, _files(reports), {"commit.txt": "abc1234\n", "images.txt": "redis 1a2b\n"},
                        key, WHEN, "abc1234")


def _members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path, "r:gz") as tar:
        return {info.name: tar.extractfile(info).read() for info in tar}


def _rewrite(path: Path, members: dict[str, bytes]) -> None:
    """The tarball rewritten as someone altering it would: other members, same format."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def _with_manifest_updated(members: dict[str, bytes]) -> dict[str, bytes]:
    """The manifest recomputed over the altered members, as a careful forger would."""
    covered = {name: data for name, data in members.items() if name not in (bundle.MANIFEST, bundle.SIGNATURE)}
    return {**members, bundle.MANIFEST: bundle.manifest_text(covered).encode()}


def test_a_bundle_verifies_and_holds_the_reports_the_facts_and_a_manifest_in_sha256sums_format(reports):
    written = _write(reports)
    assert written.path == reports / "evidence-20250304T050607Z-abc1234.tar.gz"
    assert not written.signed
    assert written.members == ["MANIFEST.sha256", "UNSIGNED", "acceptance.html", "checklist.md", "commit.txt",
                               "images.txt", "junit.xml"]
    members = _members(written.path)
    manifest = members["MANIFEST.sha256"].decode().splitlines()
    assert manifest == sorted(manifest, key=lambda line: line[66:])
    assert f"{hashlib.sha256(members['junit.xml']).hexdigest()}  junit.xml" in manifest
    assert len(manifest) == len(members) - 1
    assert "no signing key was configured" in members["UNSIGNED"].decode()
    verification = verify_bundle(written.path, None)
    assert verification.ok, verification.lines
    assert verification.lines == ["6 members match MANIFEST.sha256",
                                  "unsigned (no signing key was configured for the run)"]


def test_the_tarball_is_the_same_bytes_each_time_its_members_0644_dated_the_run(reports):
    first = _write(reports).path.read_bytes()
    second = _write(reports).path.read_bytes()
    assert first == second
    with tarfile.open(fileobj=io.BytesIO(first), mode="r:gz") as tar:
        assert {(info.mode, info.mtime, info.type) for info in tar} == {(0o644, int(WHEN.timestamp()), tarfile.REGTYPE)}
    assert [path.name for path in reports.iterdir() if path.name.endswith(".tmp")] == []


@pytest.mark.parametrize("commit, name", [("unknown (no git)", "nogit"), ("", "nogit"),
                                          ("abc1234 (with uncommitted changes)", "abc1234-dirty")])
def test_the_name_says_nogit_or_dirty(commit, name):
    assert bundle.bundle_name(WHEN, commit) == f"evidence-20250304T050607Z-{name}.tar.gz"


def test_a_changed_report_fails_naming_it(reports):
    path = _write(reports).path
    members = _members(path)
    _rewrite(path, {**members, "acceptance.html": b"<html>BDD criterion: FAILED</html>\n"})
    verification = verify_bundle(path, None)
    assert not verification.ok
    assert len(verification.failures) == 1
    assert verification.failures[0].startswith("acceptance.html: changed (sha256 expected ")


def test_an_extra_member_fails(reports):
    path = _write(reports).path
    _rewrite(path, {**_members(path), "late.txt": b"added afterwards"})
    verification = verify_bundle(path, None)
    assert not verification.ok and verification.failures == ["extra member not in the manifest: late.txt"]


def test_a_missing_member_fails(reports):
    path = _write(reports).path
    members = _members(path)
    del members["checklist.md"]
    _rewrite(path, members)
    verification = verify_bundle(path, None)
    assert not verification.ok and verification.failures == ["checklist.md: listed in the manifest but missing"]


def test_links_and_paths_out_of_the_bundle_are_refused_not_read(reports, tmp_path):
    path = _write(reports).path
    with tarfile.open(path, "w:gz") as tar:
        link = tarfile.TarInfo("acceptance.html")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
        for name in ("../outside.txt", "/tmp/absolute.txt"):
            info = tarfile.TarInfo(name)
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
    failures = verify_bundle(path, None).failures
    assert "refused member acceptance.html: a link" in failures
    assert "refused member ../outside.txt: a path containing '..'" in failures
    assert "refused member /tmp/absolute.txt: an absolute path" in failures
    assert not (tmp_path / "outside.txt").exists()


def test_a_file_that_is_no_tarball_is_a_finding_not_a_traceback(tmp_path):
    path = tmp_path / "evidence.tar.gz"
    path.write_text("not a tarball")
    verification = verify_bundle(path, None)
    assert not verification.ok and "not a readable tar.gz" in verification.lines[0]


def test_a_reserved_or_unsafe_member_name_is_refused(reports):
    with pytest.raises(BundleError, match="MANIFEST.sha256"):
        write_bundle(reports, [], {"MANIFEST.sha256": "forged"}, None, WHEN, "abc1234")
    with pytest.raises(BundleError, match="unusable member name"):
        write_bundle(reports, [], {"../escape.txt": "x"}, None, WHEN, "abc1234")


# --- signatures --------------------------------------------------------------------------------------

def _key(folder: Path, name: str, passphrase: str = "") -> Path:
    key = folder / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-C", name, "-f", str(key)], check=True)
    return key


@pytest.fixture
def keys(tmp_path) -> dict[str, Path]:
    folder = tmp_path / "keys"
    folder.mkdir()
    found = {"alice": _key(folder, "alice"), "bob": _key(folder, "bob")}
    allowed = folder / "allowed_signers"
    allowed.write_text(f'alice@example.org namespaces="tse-evidence" {(folder / "alice.pub").read_text()}')
    found["allowed"] = allowed
    return found


@needs_ssh_keygen
def test_a_bundle_signed_with_an_allowed_key_verifies_and_names_its_signer(reports, keys):
    written = _write(reports, keys["alice"])
    assert written.signed and "MANIFEST.sha256.sig" in written.members and "UNSIGNED" not in written.members
    verification = verify_bundle(written.path, keys["allowed"])
    assert verification.ok, verification.lines
    assert verification.signer == "alice@example.org"
    assert "signed by alice@example.org, good signature" in verification.lines


@needs_ssh_keygen
def test_a_bundle_signed_with_another_key_does_not_verify(reports, keys):
    path = _write(reports, keys["bob"]).path
    verification = verify_bundle(path, keys["allowed"])
    assert not verification.ok and verification.signer is None
    assert verification.failures == [f"signature does not match any key in {keys['allowed']}"]


@needs_ssh_keygen
def test_a_signed_bundle_with_a_changed_member_fails_even_with_its_manifest_recomputed(reports, keys):
    path = _write(reports, keys["alice"]).path
    changed = {**_members(path), "acceptance.html": b"<html>BDD criterion: FAILED</html>\n"}
    _rewrite(path, changed)
    assert [line.split(":")[0] for line in verify_bundle(path, keys["allowed"]).failures] == ["acceptance.html"]
    _rewrite(path, _with_manifest_updated(changed))
    failures = verify_bundle(path, keys["allowed"]).failures
    assert len(failures) == 1 and failures[0].startswith("signature by alice@example.org does not match")


@needs_ssh_keygen
def test_signed_but_no_allowed_signers_checks_integrity_and_says_the_signature_was_not(reports, keys):
    verification = verify_bundle(_write(reports, keys["alice"]).path, None)
    assert verification.ok
    assert ("signed, but no allowed-signers file given: signature not checked (use --allowed-signers FILE)"
            in verification.lines)


@needs_ssh_keygen
def test_an_unsigned_bundle_fails_when_allowed_signers_are_given(reports, keys):
    verification = verify_bundle(_write(reports).path, keys["allowed"])
    assert not verification.ok
    assert verification.failures == [f"unsigned bundle; an allowed-signers file was given ({keys['allowed']})"]


@needs_ssh_keygen
def test_a_signature_taken_out_is_noticed(reports, keys):
    path = _write(reports, keys["alice"]).path
    members = _members(path)
    del members["MANIFEST.sha256.sig"]
    _rewrite(path, members)
    assert not verify_bundle(path, None).ok


@needs_ssh_keygen
def test_a_key_that_cannot_sign_is_a_clear_error_naming_it_and_no_bundle_is_left(reports, tmp_path):
    locked = _key(tmp_path, "locked", passphrase="secret-passphrase")
    with pytest.raises(BundleError, match=f"signing with {locked} failed .*without passphrase"):
        _write(reports, locked)
    with pytest.raises(BundleError, match=f"signing key {tmp_path / 'absent'} does not exist"):
        _write(reports, tmp_path / "absent")
    assert list(reports.glob("evidence-*")) == [] and list(reports.glob(".evidence-*")) == []


# --- redaction ---------------------------------------------------------------------------------------

COMPOSE_CONFIG = """\
name: trading-ecosystem
services:
  postgres:
    image: postgres:16
    environment:
      POSTGRES_USER: postgres
      POSTGRES_PASSWORD: postgres-dev-password
      PGDATA: /var/lib/postgresql/data
    healthcheck:
      test:
        - CMD-SHELL
        - redis-cli -a admin-dev-password ping
  exporter:
    environment:
      - REDIS_EXPORTER_SCRAPE_PASSWORD=scrape-dev-password
      - API_TOKEN=token-value-123
      - LOG_LEVEL=info
"""


def test_a_compose_config_comes_out_without_its_secrets():
    redacted = redact_compose_config(COMPOSE_CONFIG, ["admin-dev-password"])
    for secret in ("postgres-dev-password", "admin-dev-password", "scrape-dev-password", "token-value-123"):
        assert secret not in redacted
    assert "POSTGRES_PASSWORD: '********'" in redacted and "REDIS_EXPORTER_SCRAPE_PASSWORD=********" in redacted
    assert "POSTGRES_USER: postgres" in redacted and "LOG_LEVEL=info" in redacted
    assert "redis-cli -a ******** ping" in redacted


def test_a_password_named_value_is_masked_wherever_else_it_appears():
    config = ("services:\n  a:\n    environment:\n      DB_PASSWORD: long-password-1\n"
              "    command: run --pw long-password-1\n")
    assert "long-password-1" not in redact_compose_config(config, [])


def test_a_config_that_is_not_yaml_is_masked_line_by_line():
    redacted = redact_compose_config("[broken\nDB_PASSWORD=very-secret-1\nuse very-secret-1\n", [])
    assert "very-secret-1" not in redacted and "DB_PASSWORD=********" in redacted


def test_redact_masks_each_secret_and_leaves_short_or_empty_ones():
    assert redact("pw=hunter22 and hunter22-long, x=abc", ["hunter22", "hunter22-long", "abc", ""]) == \
        "pw=******** and ********, x=abc"


# --- stackctl verify-evidence ------------------------------------------------------------------------

def _verify_evidence(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "infra/host/stackctl.py"), "verify-evidence", *args],
                          capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})


def test_stackctl_verify_evidence_exit_codes(reports):
    path = _write(reports).path
    good = _verify_evidence(str(path))
    assert good.returncode == 0, good.stdout + good.stderr
    assert good.stdout.splitlines()[-1] == "verify-evidence: OK"
    _rewrite(path, {**_members(path), "acceptance.html": b"changed"})
    tampered = _verify_evidence(str(path))
    assert tampered.returncode == 1
    assert "acceptance.html: changed" in tampered.stdout
    assert tampered.stdout.splitlines()[-1] == "verify-evidence: FAILED (1 findings)"
    missing = _verify_evidence(str(reports / "absent.tar.gz"))
    assert missing.returncode == 2 and "no evidence bundle at" in missing.stderr


@needs_ssh_keygen
def test_stackctl_verify_evidence_takes_the_allowed_signers_from_the_environment(reports, keys):
    path = _write(reports, keys["bob"]).path
    done = subprocess.run([sys.executable, str(ROOT / "infra/host/stackctl.py"), "verify-evidence", str(path)],
                          capture_output=True, text=True, timeout=60,
                          env={"PATH": "/usr/bin:/bin", "TSE_ALLOWED_SIGNERS": str(keys["allowed"])})
    assert done.returncode == 1 and "does not match any key" in done.stdout


def test_a_report_that_cannot_be_read_is_a_bundle_error(reports):
    with pytest.raises(BundleError, match="cannot read cucumber.json"):
        write_bundle(reports, [reports / "cucumber.json"], {}, None, WHEN, "abc1234")
