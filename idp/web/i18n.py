"""A small message catalog: Simplified Chinese by default, English on request.

The language is chosen, in order, by an explicit switch (``?lang=``, kept
in a cookie), the authorization request's ``ui_locales`` (OIDC Core
§3.1.2.1), and ``Accept-Language``.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["LANGUAGES", "DEFAULT", "pick_language", "translate", "register"]

DEFAULT = "zh-CN"
LANGUAGES = ("zh-CN", "en")

_MESSAGES: dict[str, dict[str, str]] = {
    "site_name": {"zh-CN": "一网通办 统一身份认证", "en": "Yiwang unified sign-in"},
    "login_title": {"zh-CN": "登录", "en": "Sign in"},
    "login_for": {"zh-CN": "登录以继续访问 {client}", "en": "Sign in to continue to {client}"},
    "id_number": {"zh-CN": "居民身份证号码", "en": "Resident ID number"},
    "id_number_hint": {"zh-CN": "18 位，最后一位可能是 X", "en": "18 characters; the last may be X"},
    "password": {"zh-CN": "密码", "en": "Password"},
    "sign_in": {"zh-CN": "登录", "en": "Sign in"},
    "bad_credentials": {"zh-CN": "身份证号码或密码不正确。", "en": "The ID number or the password is wrong."},
    "locked": {
        "zh-CN": "尝试次数过多，请 {minutes} 分钟后再试。",
        "en": "Too many attempts, try again in {minutes} minutes.",
    },
    "attempts_left": {
        "zh-CN": "还可以再试 {n} 次，之后账号将被锁定最长 {minutes} 分钟。",
        "en": "{n} attempts left before the account is locked for up to {minutes} minutes.",
    },
    "attempts_left_one": {
        "zh-CN": "还可以再试 1 次，之后账号将被锁定最长 {minutes} 分钟。",
        "en": "1 attempt left before the account is locked for up to {minutes} minutes.",
    },
    "id_length": {
        "zh-CN": "身份证号码应为 18 位，您输入了 {n} 位。",
        "en": "An ID number has 18 characters; you entered {n}.",
    },
    "id_charset": {
        "zh-CN": "身份证号码由 17 位数字和 1 位数字或 X 组成。",
        "en": "An ID number is 17 digits followed by a digit or X.",
    },
    "id_birth_date": {
        "zh-CN": "身份证号码第 7 至 14 位应为有效的出生日期。",
        "en": "Characters 7 to 14 of the ID number must be a real date of birth.",
    },
    "id_check_character": {
        "zh-CN": "身份证号码校验位不正确，请检查是否输错。",
        "en": "The check character does not match: please check the number for a typo.",
    },
    "required": {"zh-CN": "请填写此项。", "en": "Please fill in this field."},
    "second_factor_title": {"zh-CN": "两步验证", "en": "Two-step verification"},
    "totp_prompt": {
        "zh-CN": "请输入身份验证器应用中显示的 6 位动态码。",
        "en": "Enter the 6-digit code shown in your authenticator app.",
    },
    "totp_code": {"zh-CN": "动态码", "en": "Code"},
    "totp_wrong": {"zh-CN": "动态码不正确或已使用。", "en": "The code is wrong or has already been used."},
    "verify": {"zh-CN": "验证", "en": "Verify"},
    "consent_title": {"zh-CN": "授权确认", "en": "Allow access"},
    "consent_intro": {
        "zh-CN": "{client} 请求获取您的以下信息：",
        "en": "{client} asks for the following:",
    },
    "scope_openid": {"zh-CN": "您的账号标识（每个应用不同）", "en": "An identifier for you (different for each service)"},
    "scope_profile": {"zh-CN": "姓名", "en": "Your name"},
    "scope_phone": {"zh-CN": "手机号码", "en": "Your phone number"},
    "scope_email": {"zh-CN": "电子邮箱", "en": "Your e-mail address"},
    "scope_offline_access": {
        "zh-CN": "在您退出登录后继续访问（长期授权）",
        "en": "Access while you are signed out (long-lived)",
    },
    "scope_certs:read": {
        "zh-CN": "读取您在电子证照库中的证照（每次读取都会记入您的证照夹）",
        "en": "Read your certificates in the certificate store (every read is shown in your wallet)",
    },
    "scope_id_number": {
        "zh-CN": "您的居民身份证号码（完整号码）",
        "en": "Your resident ID number (the full number)",
    },
    "id_number_warning": {
        "zh-CN": "身份证号码属于敏感个人信息。仅在您确认需要时勾选。",
        "en": "Your ID number is sensitive personal information. Tick this only if you want to share it.",
    },
    "allow": {"zh-CN": "同意", "en": "Allow"},
    "deny": {"zh-CN": "拒绝", "en": "Deny"},
    "error_title": {"zh-CN": "出错了", "en": "Something went wrong"},
    "error_request": {
        "zh-CN": "此登录请求无效，无法返回发起请求的网站。",
        "en": "This sign-in request is not valid and cannot be sent back to the site that made it.",
    },
    "error_generic": {"zh-CN": "服务暂时出现问题，请稍后再试。", "en": "Something went wrong on our side. Please try again later."},
    "error_expired": {"zh-CN": "登录请求已过期，请返回应用重新开始。", "en": "This sign-in request has expired. Go back to the service and start again."},
    "error_csrf": {"zh-CN": "页面已过期，请刷新后重试。", "en": "This page has expired. Reload it and try again."},
    "switch_language": {"zh-CN": "English", "en": "中文"},
    "account_title": {"zh-CN": "我的账号", "en": "My account"},
    "sessions": {"zh-CN": "登录设备与会话", "en": "Active sessions"},
    "connected_apps": {"zh-CN": "已授权的应用", "en": "Connected services"},
    "revoke": {"zh-CN": "撤销", "en": "Revoke"},
    "sign_out": {"zh-CN": "退出", "en": "Sign out"},
    "sign_out_all": {"zh-CN": "全部退出", "en": "Sign out everywhere"},
    "this_session": {"zh-CN": "当前会话", "en": "This session"},
    "none_yet": {"zh-CN": "暂无", "en": "None"},
    "change_password": {"zh-CN": "修改密码", "en": "Change password"},
    "current_password": {"zh-CN": "当前密码", "en": "Current password"},
    "new_password": {"zh-CN": "新密码", "en": "New password"},
    "new_password_again": {"zh-CN": "再次输入新密码", "en": "New password again"},
    "password_policy": {
        "zh-CN": "至少 {n} 个字符。",
        "en": "At least {n} characters.",
    },
    "password_change_hint": {
        "zh-CN": "修改后，您在其他设备上的登录将被退出，当前设备保持登录。",
        "en": "After the change you are signed out on other devices; this one stays signed in.",
    },
    "password_mismatch": {"zh-CN": "两次输入的新密码不一致。", "en": "The two new passwords are not the same."},
    "password_current_wrong": {"zh-CN": "当前密码不正确。", "en": "The current password is wrong."},
    "password_throttled": {
        "zh-CN": "尝试次数过多，请稍后再试。",
        "en": "Too many attempts, try again later.",
    },
    "password_changed": {
        "zh-CN": "密码已修改，其他设备上的登录已退出。",
        "en": "Your password was changed; you were signed out on other devices.",
    },
    "totp_recovery_hint": {
        "zh-CN": "手机丢失？可输入一个恢复码，每个只能使用一次。",
        "en": "Lost your phone? Enter one of your recovery codes (like abcde-fghjk); each works once.",
    },
    "totp_on": {"zh-CN": "两步验证已开启。", "en": "Two-step verification is on."},
    "totp_off": {"zh-CN": "两步验证未开启。", "en": "Two-step verification is off."},
    "totp_setup": {"zh-CN": "开启两步验证", "en": "Turn on two-step verification"},
    "totp_setup_again": {"zh-CN": "更换身份验证器", "en": "Use a new authenticator app"},
    "totp_setup_title": {"zh-CN": "设置两步验证", "en": "Set up two-step verification"},
    "totp_setup_scan": {
        "zh-CN": "用身份验证器应用扫描二维码，然后输入应用显示的 6 位动态码。",
        "en": "Scan the QR code with your authenticator app, then enter the 6-digit code it shows.",
    },
    "totp_setup_qr_alt": {"zh-CN": "身份验证器二维码", "en": "QR code for the authenticator app"},
    "totp_setup_key": {"zh-CN": "无法扫描？手动输入密钥：", "en": "Cannot scan? Type this key:"},
    "totp_setup_done": {"zh-CN": "两步验证已开启。", "en": "Two-step verification is now on."},
    "recovery_codes_title": {"zh-CN": "恢复码", "en": "Recovery codes"},
    "recovery_codes_once": {
        "zh-CN": "请抄写或打印这些恢复码并妥善保管。手机丢失时，每个恢复码可代替动态码使用一次。它们只显示这一次。",
        "en": "Write these down or print them and keep them safe. If you lose your phone, each one replaces "
              "a code once. They are shown only this once.",
    },
    "back_to_account": {"zh-CN": "返回我的账号", "en": "Back to my account"},
    "error_not_found_title": {"zh-CN": "找不到此页面", "en": "Page not found"},
    "error_not_found": {
        "zh-CN": "您访问的地址不存在。请检查地址，或返回您正在使用的政务服务网站重新开始。",
        "en": "There is no page at this address. Check the address, or go back to the service you were using and start again.",
    },
    "channel_browser": {"zh-CN": "浏览器", "en": "Browser"},
    "signed_in_at": {"zh-CN": "登录于 {when}（协调世界时）", "en": "signed in {when} UTC"},
}


def pick_language(switch: str | None, ui_locales: str | None, accept: Iterable[str]) -> str:
    for candidate in [switch, *(ui_locales or "").split(), *accept]:
        if not candidate:
            continue
        c = candidate.strip().lower()
        if c.startswith("zh"):
            return "zh-CN"
        if c.startswith("en"):
            return "en"
    return DEFAULT


def register(messages: dict[str, dict[str, str]]) -> None:
    """Add a page area's own messages (device, logout) to the one catalogue."""
    for key, entry in messages.items():
        known = _MESSAGES.setdefault(key, entry)
        if known != entry:
            raise ValueError(f"message {key!r} is defined twice, differently")


def translate(lang: str, key: str, **values: object) -> str:
    entry = _MESSAGES.get(key)
    if entry is None:
        return key
    text = entry.get(lang) or entry[DEFAULT]
    return text.format(**values) if values else text
