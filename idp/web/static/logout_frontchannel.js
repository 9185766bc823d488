// Front-Channel Logout 1.0 §3: the relying parties' logout URIs load in the
// iframes of this page; once they have all loaded (or after 5 s, so one slow
// or dead site cannot hold the citizen here), continue to the post-logout
// redirect URI the idp validated (data-continue on #frontchannel). No inline script:
// the page's CSP allows scripts from the idp only.
(function () {
  "use strict";
  var box = document.getElementById("frontchannel");
  if (!box) { return; }
  var target = box.getAttribute("data-continue");
  var frames = document.querySelectorAll("iframe.yw-frontchannel");
  var pending = frames.length;
  var done = false;
  function go() {
    if (done) { return; }
    done = true;
    box.setAttribute("data-state", "done");
    if (target) { window.location.assign(target); }
  }
  function loaded() {
    pending -= 1;
    if (pending <= 0) { go(); }
  }
  for (var i = 0; i < frames.length; i++) {
    frames[i].addEventListener("load", loaded);
    frames[i].addEventListener("error", loaded);
  }
  if (pending === 0) { go(); }
  window.setTimeout(go, 5000);
})();
