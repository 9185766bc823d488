"""Claims of the three demo certificate types, as certstore would build them."""

from __future__ import annotations

import datetime as dt

from signing.qr import QrClaims

from .conftest import ISSUER_USCC

LONG_COMPANY = "北京市海淀区中关村科技园区智能信息技术服务股份有限公司"  # 27 characters


def claims(kind: str = "resident", *, uscc: str = ISSUER_USCC, **changes: object) -> QrClaims:
    if kind == "resident":
        c = QrClaims(
            identifier=f"1.2.156.3005.2.JMHZ.{uscc}.000123.1.K",
            type_code="JMHZ",
            issuer_uscc=uscc,
            holder_name="张三丰",
            holder_code_masked="110101********123X",
            holder_code_type="111",
            valid_from=dt.date(2026, 5, 1),
            valid_until=dt.date(2031, 4, 30),
            issued_at=dt.date(2026, 5, 1),
            status_list="1",
            status_index=98765,
            fields={"ad": "北京市东城区"},
        )
    elif kind == "business":
        c = QrClaims(
            identifier=f"1.2.156.3005.2.YYZZ.{uscc}.004711.2.7",
            type_code="YYZZ",
            issuer_uscc=uscc,
            holder_name=LONG_COMPANY,
            holder_code_masked="91110108MA01C2XQ3K",
            holder_code_type="001",
            valid_from=dt.date(2026, 5, 1),
            valid_until=None,
            issued_at=dt.date(2026, 5, 2),
            status_list="1",
            status_index=131071,
            fields={"lr": "欧阳建国", "es": "2015-03-12"},
        )
    else:
        c = QrClaims(
            identifier=f"1.2.156.3005.2.XLZS.{uscc}.000042.1.Q",
            type_code="XLZS",
            issuer_uscc=uscc,
            holder_name="李小龙",
            holder_code_masked="440304********002X",
            holder_code_type="111",
            valid_from=dt.date(2026, 5, 20),
            valid_until=None,
            issued_at=dt.date(2026, 5, 18),
            fields={"sc": "北京大学", "mj": "计算机科学与技术", "dg": "工学学士"},
        )
    if changes:
        from dataclasses import replace

        c = replace(c, **changes)  # type: ignore[arg-type]
    return c


KINDS = ("resident", "business", "diploma")
