// Continue the wallet's sign-out at the identity provider (a static file: the CSP allows no inline script).
"use strict";
(function () {
  var form = document.getElementById("end-session");
  if (form) { form.submit(); }
})();
