"""Issue 18: the account page names what a citizen knows: portals by name, the browser and system, times in Beijing time."""

from __future__ import annotations

import re

from idp.web.views_account import _device
from tests.idp.oidc_helpers import *  # noqa: F403
from tests.idp.oidc_helpers import authorize_code

ANDROID_CHROME = ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
                  "Chrome/124.0.0.0 Mobile Safari/537.36")


def test_a_session_shows_the_portal_name_device_and_china_time(web, citizen, rp):
    web.environ_base["HTTP_USER_AGENT"] = ANDROID_CHROME
    authorize_code(web, rp)
    zh = web.get("/account", headers={"Accept-Language": "zh-CN"}).get_data(as_text=True)
    session_line = zh.split('<ul class="list">', 1)[1].split("</li>", 1)[0]
    assert "已登录的服务： 办事大厅" in session_line and rp.client_id not in session_line  # the name, not the id
    assert '<span lang="en">Chrome · Android</span>' in session_line
    assert re.search(r"登录于 \d{4}-\d{2}-\d{2} \d{2}:\d{2}（北京时间）", session_line), session_line
    en = web.get("/account?lang=en").get_data(as_text=True)
    assert re.search(r"signed in \d{4}-\d{2}-\d{2} \d{2}:\d{2} \(China Standard Time\)", en)
    assert "Signed in to: 办事大厅" in en and "UTC" not in en


def test_the_device_label():
    assert _device(ANDROID_CHROME) == "Chrome · Android"
    assert _device("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                   "Chrome/124.0 Safari/537.36 Edg/124.0") == "Edge · Windows"
    assert _device("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
                   "Version/17.4 Mobile/15E148 Safari/604.1") == "Safari · iOS"
    assert _device("curl/8.5") == "" and _device("") == ""
