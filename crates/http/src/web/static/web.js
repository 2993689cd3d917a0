// Small enhancements; every page works without them.
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  // Typing an "other" forwarding target selects its radio button.
  document.querySelectorAll("input[data-radio]").forEach(function (input) {
    input.addEventListener("input", function () {
      var radio = document.getElementById(input.getAttribute("data-radio"));
      if (radio && input.value.trim() !== "") { radio.checked = true; }
    });
  });
  // Ask before revoking a certificate.
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) { event.preventDefault(); }
    });
  });
  // Move focus to a refusal so that screen readers and keyboards land on it.
  var invalid = document.querySelector("[aria-invalid=true]");
  if (invalid) { invalid.focus(); }
});
