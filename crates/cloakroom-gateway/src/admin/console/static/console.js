// Cloakroom console: the few lines of behaviour htmx does not cover. Loaded from
// /console/static (the CSP allows no inline script).
"use strict";
// Forms marked data-confirm ask first (deleting a secret cannot be undone).
document.addEventListener("submit", function (event) {
  var message = event.target.getAttribute("data-confirm");
  if (message && !window.confirm(message)) {
    event.preventDefault();
  }
});
