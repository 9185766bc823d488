"""Citizen accounts: identity rules, passwords, second factor, login, CSV import."""

from __future__ import annotations

import time
from pathlib import Path

import pyotp
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id as RealArgon2id
from sqlalchemy.orm import Session

import idp.passwords
from idp.accounts import ID_NUMBER_PURPOSE, AccountService
from idp.errors import Conflict, InvalidInput, NotFound
from idp.models import AuditEvent, Citizen
from idp.passwords import OWASP_ITERATIONS, OWASP_MEMORY_KIB, PasswordHasher
from idp.services import Services
from keys.errors import InvalidIdentifier
from tests.idp.data_helpers import *  # noqa: F403
from tests.idp.data_helpers import make_id

ALICE = make_id("11010519491231002")
BOB = make_id("44030019900101123")
NOBODY = make_id("31010119800202345")


def _row_bytes(services: Services) -> bytes:
    """Every column of every citizen row as raw bytes, as the database holds them."""
    with services.db.engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT * FROM citizen")).all()
    out = b""
    for row in rows:
        for value in row:
            out += value if isinstance(value, bytes) else str(value).encode()
    return out


def test_account_is_found_by_number_but_never_stored_in_clear(services: Services) -> None:
    citizen = services.accounts.add(ALICE.lower(), "张三", "correct horse", phone="+8613800000000")
    assert citizen.id_number_masked == ALICE[:6] + "********" + ALICE[-4:]
    found = services.accounts.find_by_id_number(ALICE)
    assert found is not None and found.id == citizen.id
    assert services.accounts.id_number_of(found) == ALICE
    raw = _row_bytes(services)
    assert ALICE.encode() not in raw and ALICE[:17].encode() not in raw
    assert services.accounts.find_by_id_number(NOBODY) is None
    assert services.accounts.find_by_id_number("not a number") is None


def test_duplicate_account_is_a_conflict_that_does_not_echo_the_number(services: Services) -> None:
    services.accounts.add(ALICE, "张三", "correct horse")
    with pytest.raises(Conflict) as err:
        services.accounts.add(ALICE, "李四", "another pass")
    assert ALICE not in str(err.value) and ALICE[6:14] not in str(err.value)
    with services.db.session() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(Citizen)) == 1


def test_invalid_number_and_bad_fields_are_refused(services: Services) -> None:
    wrong_check = ALICE[:17] + ("0" if ALICE[17] != "0" else "1")
    with pytest.raises(InvalidIdentifier) as err:
        services.accounts.add(wrong_check, "张三", "correct horse")
    assert err.value.reason == "check_character"
    with pytest.raises(InvalidInput, match="name"):
        services.accounts.add(ALICE, "  ", "correct horse")
    with pytest.raises(InvalidInput, match="at least 8"):
        services.accounts.add(ALICE, "张三", "short")
    with pytest.raises(InvalidInput, match="e-mail"):
        services.accounts.add(ALICE, "张三", "correct horse", email="nope")
    with services.db.session() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(Citizen)) == 0


def test_authenticate_right_wrong_missing_disabled(services: Services) -> None:
    services.accounts.add(ALICE, "张三", "correct horse")
    services.accounts.add(BOB, "李四")  # no password yet
    assert services.accounts.authenticate(ALICE, "correct horse") is not None
    assert services.accounts.authenticate(ALICE, "wrong horse") is None
    assert services.accounts.authenticate(NOBODY, "correct horse") is None
    assert services.accounts.authenticate(BOB, "") is None
    services.accounts.set_disabled(ALICE, True)
    assert services.accounts.authenticate(ALICE, "correct horse") is None
    services.accounts.set_disabled(ALICE, False)
    services.accounts.set_password(ALICE, "battery staple")
    assert services.accounts.authenticate(ALICE, "correct horse") is None
    assert services.accounts.authenticate(ALICE, "battery staple") is not None
    with pytest.raises(NotFound):
        services.accounts.set_password(NOBODY, "battery staple")


class _CountingArgon2id:
    """Stands in for cryptography's Argon2id and counts the verifications run."""

    verified: list[str] = []

    def __init__(self, **kwargs: int | bytes) -> None:
        self._kdf = RealArgon2id(**kwargs)

    def derive_phc_encoded(self, data: bytes) -> str:
        return self._kdf.derive_phc_encoded(data)

    @staticmethod
    def verify_phc_encoded(data: bytes, phc: str) -> None:
        _CountingArgon2id.verified.append(phc.split("$")[3])  # the m=,t=,p= part
        RealArgon2id.verify_phc_encoded(data, phc)


def test_authentication_does_the_same_work_whether_or_not_the_account_exists(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    services.accounts.add(ALICE, "张三", "correct horse")
    services.accounts.add(BOB, "李四")
    monkeypatch.setattr(idp.passwords, "Argon2id", _CountingArgon2id)
    cases = [
        (ALICE, "correct horse"),
        (ALICE, "wrong horse"),
        (NOBODY, "correct horse"),  # no such account
        (BOB, "anything at all"),  # no password set
        ("12345", "correct horse"),  # not even a number
    ]
    for number, password in cases:
        _CountingArgon2id.verified.clear()
        services.accounts.authenticate(number, password)
        # exactly one Argon2id verification at the configured cost, every time
        params = f"m={services.hasher.memory_kib},t={services.hasher.iterations},p=1"
        assert _CountingArgon2id.verified == [params], number[:6]


def test_owasp_parameters_are_the_default_and_old_hashes_are_upgraded(services: Services) -> None:
    assert (PasswordHasher().memory_kib, PasswordHasher().iterations) == (19456, 2)
    assert (OWASP_MEMORY_KIB, OWASP_ITERATIONS) == (19456, 2)
    services.accounts.add(ALICE, "张三", "correct horse")
    stronger = PasswordHasher(memory_kib=128, iterations=2)
    accounts = AccountService(services.db, services.pii, stronger)
    assert accounts.authenticate(ALICE, "correct horse") is not None
    stored = services.accounts.find_by_id_number(ALICE)
    assert stored is not None and stored.password_hash is not None
    assert "$m=128,t=2,p=1$" in stored.password_hash
    assert accounts.authenticate(ALICE, "correct horse") is not None


def test_totp_second_factor_accepts_a_code_once(services: Services) -> None:
    citizen = services.accounts.add(ALICE, "张三", "correct horse")
    enrolment = services.accounts.enrol_totp(ALICE)
    assert enrolment.secret not in repr(enrolment)
    assert enrolment.uri.startswith("otpauth://totp/") and ALICE not in enrolment.uri
    stored = services.accounts.find_by_id_number(ALICE)
    assert stored is not None and stored.has_totp
    assert enrolment.secret.encode() not in _row_bytes(services)
    now = time.time()
    code = pyotp.TOTP(enrolment.secret).at(now)
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    assert not services.accounts.verify_totp(citizen.id, wrong, at=now)
    assert services.accounts.verify_totp(citizen.id, code, at=now)
    assert not services.accounts.verify_totp(citizen.id, code, at=now)  # replay (RFC 6238 §5.2)
    later = pyotp.TOTP(enrolment.secret).at(now + 30)
    assert services.accounts.verify_totp(citizen.id, later, at=now + 30)
    assert not services.accounts.verify_totp(citizen.id, pyotp.TOTP(enrolment.secret).at(now + 300), at=now + 30)
    services.accounts.remove_totp(ALICE)
    assert not services.accounts.verify_totp(citizen.id, pyotp.TOTP(enrolment.secret).at(now + 60), at=now + 60)


def test_login_gives_one_answer_for_wrong_number_or_password_and_audits_masked(
    services: Services,
) -> None:
    services.accounts.add(ALICE, "张三", "correct horse")
    ok = services.accounts.login(ALICE, "correct horse", ip="192.0.2.1", client_id="portal")
    assert ok.ok and ok.citizen is not None and not ok.needs_second_factor
    wrong_password = services.accounts.login(ALICE, "wrong horse", ip="192.0.2.1")
    missing = services.accounts.login(NOBODY, "correct horse", ip="192.0.2.1")
    assert (wrong_password.status, missing.status) == ("invalid", "invalid")
    assert wrong_password.citizen is None and missing.citizen is None
    with pytest.raises(InvalidIdentifier):
        services.accounts.login("110105", "x", ip="192.0.2.1")
    with services.db.session() as s:
        events = s.scalars(sa.select(AuditEvent).order_by(AuditEvent.seq)).all()
    kinds = [e.kind for e in events]
    assert kinds == ["account.created", "login.success", "login.failure", "login.failure"]
    for e in events:
        assert ALICE not in (e.subject or "") and NOBODY not in (e.subject or "")
        assert "horse" not in str(e.detail)
    assert events[1].client_id == "portal" and events[1].ip == "192.0.2.1"


def test_throttle_locks_an_existing_and_a_missing_account_alike(services: Services) -> None:
    services.accounts.add(ALICE, "张三", "correct horse")
    seen = {}
    for number in (ALICE, NOBODY):
        outcomes = [
            services.accounts.login(number, "wrong horse", ip=f"198.51.100.{len(seen)}")
            for _ in range(7)
        ]
        seen[number] = [(o.status, o.retry_after > 0) for o in outcomes]
    assert seen[ALICE] == seen[NOBODY]
    assert seen[ALICE][:5] == [("invalid", False)] * 5
    assert seen[ALICE][5:] == [("throttled", True)] * 2
    locked = services.accounts.login(ALICE, "correct horse", ip="198.51.100.9")
    assert locked.status == "throttled" and 0 < locked.retry_after <= 60


def test_successful_login_clears_the_account_counter(services: Services) -> None:
    services.accounts.add(ALICE, "张三", "correct horse")
    for _ in range(4):
        assert services.accounts.login(ALICE, "wrong horse", ip="192.0.2.7").status == "invalid"
    assert services.accounts.login(ALICE, "correct horse", ip="192.0.2.7").ok
    for _ in range(4):
        assert services.accounts.login(ALICE, "wrong horse", ip="192.0.2.7").status == "invalid"
    assert services.accounts.login(ALICE, "correct horse", ip="192.0.2.7").ok


# ------------------------------------------------------------------ import


def _write(tmp_path: Path, text: str, encoding: str = "utf-8") -> Path:
    path = tmp_path / "people.csv"
    path.write_bytes(text.encode(encoding))
    return path


def test_import_keeps_good_rows_and_reports_bad_ones(services: Services, tmp_path: Path) -> None:
    services.accounts.add(BOB, "李四", "existing pass")
    wrong_check = ALICE[:17] + ("0" if ALICE[17] != "0" else "1")
    c1, c2 = make_id("32010219850505001"), make_id("32010219850505002")
    bad_date = "32010219851345001"
    text = (
        "id_number,name,phone,email,password\n"
        f"{ALICE},张三,13800000000,zs@example.cn,first pass\n"  # line 2 ok
        f"{wrong_check},错号,,,\n"  # 3 check character
        f"{c1},,,,\n"  # 4 missing name
        f"{BOB},李四,,,\n"  # 5 exists already
        f"{ALICE},张三又,,,\n"  # 6 duplicate of line 2
        f"{c2},王五\n"  # 7 wrong number of fields
        "\n"  # blank lines are skipped
        f"{bad_date}{'0'},赵六,,,\n"  # 9 impossible date
        f'{c2},"王, 五",,,\n'  # 10 ok, quoted comma
    )
    progress: list[int] = []
    report = services.accounts.import_csv(_write(tmp_path, text), progress=progress.append)
    assert report.imported == 2
    reasons = {r.line: r.reason for r in report.rejected}
    assert set(reasons) == {3, 4, 5, 6, 7, 9}
    assert "check character" in reasons[3]
    assert "name" in reasons[4]
    assert "already exists" in reasons[5]
    assert "line 2" in reasons[6]
    assert "fields" in reasons[7]
    assert "date of birth" in reasons[9]
    assert sum(progress) == 8
    for r in report.rejected:
        assert ALICE not in r.reason and BOB not in r.reason
    alice = services.accounts.find_by_id_number(ALICE)
    assert alice is not None and alice.email == "zs@example.cn"
    assert services.accounts.authenticate(ALICE, "first pass") is not None
    wang = services.accounts.find_by_id_number(c2)
    assert wang is not None and wang.name == "王, 五" and wang.password_hash is None


@pytest.mark.parametrize(
    ("text", "encoding", "message"),
    [
        ("id_number,name\n{id},张三\n", "gb18030", "not utf-8"),
        ("number,full_name\n{id},张三\n", "utf-8", "header line"),
        ("name,phone\n张三,1380000\n", "utf-8", "header line"),
        ("", "utf-8", "empty"),
        ('id_number,name\n{id},"张三\n', "utf-8", "CSV"),
    ],
)
def test_a_bad_file_is_one_error_and_imports_nothing(
    services: Services, tmp_path: Path, text: str, encoding: str, message: str
) -> None:
    path = _write(tmp_path, text.format(id=ALICE), encoding)
    with pytest.raises(InvalidInput, match=message):
        services.accounts.import_csv(path)
    assert services.accounts.find_by_id_number(ALICE) is None


def test_import_reads_gb18030_when_told(services: Services, tmp_path: Path) -> None:
    path = _write(tmp_path, f"id_number,name\n{ALICE},张三\n", "gb18030")
    report = services.accounts.import_csv(path, encoding="gb18030")
    assert report.imported == 1
    alice = services.accounts.find_by_id_number(ALICE)
    assert alice is not None and alice.name == "张三"


def test_blind_index_purpose_is_shared_with_other_modules(services: Services) -> None:
    citizen = services.accounts.add(ALICE, "张三", "correct horse")
    assert citizen.id_number_index == services.pii.blind_index(ALICE, purpose=ID_NUMBER_PURPOSE)


def test_wrong_totp_codes_count_against_the_account(services: Services) -> None:
    citizen = services.accounts.add(ALICE, "张三", "correct horse")
    secret = services.accounts.enrol_totp(ALICE).secret
    now = time.time()
    good = pyotp.TOTP(secret).at(now)
    wrong = f"{(int(good) + 1) % 1_000_000:06d}"
    for _ in range(5):
        assert not services.accounts.verify_totp(citizen.id, wrong, at=now, ip="192.0.2.3")
    # locked: even the right code is refused now, and the login page is throttled too
    assert not services.accounts.verify_totp(citizen.id, good, at=now, ip="192.0.2.3")
    assert services.accounts.login(ALICE, "correct horse", ip="192.0.2.3").status == "throttled"
    with services.db.session() as s:
        kinds = s.scalars(sa.select(AuditEvent.kind).order_by(AuditEvent.seq)).all()
    assert kinds.count("login.totp_failure") == 5 and "login.locked" in kinds


def test_a_known_password_does_not_buy_fresh_totp_guesses(services: Services) -> None:
    citizen = services.accounts.add(ALICE, "张三", "correct horse")
    secret = services.accounts.enrol_totp(ALICE).secret
    now = time.time()
    good = pyotp.TOTP(secret).at(now)
    wrong = f"{(int(good) + 1) % 1_000_000:06d}"
    for _ in range(2):
        outcome = services.accounts.login(ALICE, "correct horse", ip="192.0.2.4")
        assert outcome.ok and outcome.needs_second_factor
        assert not services.accounts.verify_totp(citizen.id, wrong, at=now, ip="192.0.2.4")
        assert not services.accounts.verify_totp(citizen.id, wrong, at=now, ip="192.0.2.4")
    # four failures so far survive the two password successes; the fifth locks
    assert not services.accounts.verify_totp(citizen.id, wrong, at=now, ip="192.0.2.4")
    assert services.accounts.login(ALICE, "correct horse", ip="192.0.2.4").status == "throttled"


def test_passing_the_second_factor_clears_the_counters(services: Services) -> None:
    citizen = services.accounts.add(ALICE, "张三", "correct horse")
    secret = services.accounts.enrol_totp(ALICE).secret
    now = time.time()
    good = pyotp.TOTP(secret).at(now)
    wrong = f"{(int(good) + 1) % 1_000_000:06d}"
    for _ in range(4):
        services.accounts.verify_totp(citizen.id, wrong, at=now)
    assert services.accounts.verify_totp(citizen.id, good, at=now)
    for _ in range(4):
        assert services.accounts.login(ALICE, "wrong horse").status == "invalid"



def test_import_survives_an_account_created_meanwhile(
    services: Services, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another admin adds one of the numbers between the check and the insert."""
    services.accounts.add(BOB, "李四", "their pass 1")
    original = AccountService._existing_indexes
    missed: list[bool] = []

    def stale_once(s: Session, indexes: list[str]) -> set[str]:
        if not missed:  # the first check ran before the other admin's commit
            missed.append(True)
            return set()
        return original(s, indexes)

    monkeypatch.setattr(AccountService, "_existing_indexes", staticmethod(stale_once))
    path = _write(tmp_path, f"id_number,name\n{ALICE},张三\n{BOB},李四的重复\n")
    report = services.accounts.import_csv(path)
    assert missed and report.imported == 1
    assert [(r.line, r.reason) for r in report.rejected] == [
        (3, "an account with this ID number already exists")
    ]
    alice = services.accounts.find_by_id_number(ALICE)
    bob = services.accounts.find_by_id_number(BOB)
    assert alice is not None and bob is not None and bob.name == "李四"
