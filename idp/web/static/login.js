// Client-side check of the resident ID number (GB 11643-1999), before the form is sent.
// The server checks again and says the same things; this only saves a round trip.
(function () {
  "use strict";
  var form = document.getElementById("login-form");
  if (!form) { return; }
  var input = document.getElementById("id_number");
  var msg = document.getElementById("id_number_msg");
  var WEIGHTS = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
  var CHECK = "10X98765432";

  function problem(value) {
    var v = value.trim().toUpperCase();
    if (v.length === 0) { return form.dataset.msgRequired; }
    if (v.length !== 18) { return form.dataset.msgLength.replace("{n}", String(v.length)); }
    if (!/^[0-9]{17}[0-9X]$/.test(v)) { return form.dataset.msgCharset; }
    var y = +v.substring(6, 10), m = +v.substring(10, 12), d = +v.substring(12, 14);
    var date = new Date(Date.UTC(y, m - 1, d));
    if (y < 1850 || date.getUTCFullYear() !== y || date.getUTCMonth() !== m - 1 || date.getUTCDate() !== d) {
      return form.dataset.msgBirth;
    }
    var sum = 0;
    for (var i = 0; i < 17; i++) { sum += (+v.charAt(i)) * WEIGHTS[i]; }
    if (CHECK.charAt(sum % 11) !== v.charAt(17)) { return form.dataset.msgCheck; }
    return "";
  }

  function show(text) {
    msg.textContent = text;
    input.setAttribute("aria-invalid", text ? "true" : "false");
  }

  input.addEventListener("blur", function () { if (input.value) { show(problem(input.value)); } });
  input.addEventListener("input", function () { if (msg.textContent) { show(problem(input.value)); } });
  form.addEventListener("submit", function (event) {
    var text = problem(input.value);
    show(text);
    if (text) { event.preventDefault(); input.focus(); }
  });
})();
