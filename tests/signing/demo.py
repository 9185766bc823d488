"""Claims of the three demo certificate types, as certstore would build them."""

from __future__ import annotations

import datetime as dt

from signing.pdf import CertificateDocument
from signing.qr import QrClaims, encode_qr_payload

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


def document(kind: str, signer: object, **changes: object) -> CertificateDocument:
    """The certificate page for a demo type, with the QR payload signed by ``signer``."""
    c = claims(kind)
    text = encode_qr_payload(c, signer)  # type: ignore[arg-type]
    common = dict(
        holder_name=c.holder_name,
        holder_code_masked=c.holder_code_masked,
        identifier=c.identifier,
        qr_text=text,
        issued_at=c.issued_at,
        valid_from=c.valid_from,
        valid_until=c.valid_until,
        issuer_uscc=c.issuer_uscc,
    )
    if kind == "resident":
        doc = CertificateDocument(
            title_zh="居住证明",
            title_en="Certificate of Residence",
            issuer_name="北京市东城区公安分局",
            paper_serial="JZ2026-0000123",
            fields=(
                ("住址", "Address", "北京市东城区东华门街道南池子大街12号"),
                ("登记日期", "Registered on", "2020-09-01"),
            ),
            **common,  # type: ignore[arg-type]
        )
    elif kind == "business":
        doc = CertificateDocument(
            title_zh="营业执照",
            title_en="Business Licence",
            issuer_name="北京市海淀区市场监督管理局",
            paper_serial="No. 1100000123456",
            fields=(
                ("类型", "Type", "股份有限公司"),
                ("法定代表人", "Legal representative", "欧阳建国"),
                ("注册资本", "Registered capital", "人民币壹亿元整"),
                ("成立日期", "Established on", "2015-03-12"),
                ("住所", "Domicile", "北京市海淀区中关村大街1号"),
                (
                    "经营范围",
                    "Business scope",
                    "技术开发、技术咨询、技术服务；软件开发；信息系统集成服务；数据处理和存储服务。"
                    * 3,
                ),
            ),
            holder_label_zh="名称",
            holder_label_en="Name",
            holder_code_label_zh="统一社会信用代码",
            holder_code_label_en="Unified social credit code",
            accent="#A61B1B",
            **common,  # type: ignore[arg-type]
        )
    else:
        doc = CertificateDocument(
            title_zh="学历证书",
            title_en="Diploma",
            issuer_name="北京大学",
            paper_serial="100011202605000042",
            fields=(
                ("专业", "Major", "计算机科学与技术"),
                ("学位", "Degree", "工学学士"),
                ("学制", "Length of study", "四年"),
            ),
            **common,  # type: ignore[arg-type]
        )
    if changes:
        from dataclasses import replace

        doc = replace(doc, **changes)  # type: ignore[arg-type]
    return doc
