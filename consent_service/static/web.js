/* Progressive enhancement only: every page works without this script. */
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  // "Print" buttons are hidden until there is a script to make them work.
  document.querySelectorAll(".js-print").forEach(function (button) {
    button.hidden = false;
    button.addEventListener("click", function () { window.print(); });
  });
  // After a refused form, move keyboard and screen-reader focus to the list of problems;
  // after a rule's preview, to the preview (the form it follows is already filled in).
  // Both are focusable with tabindex="-1" and have a heading, so a screen reader reads where
  // it landed; without this script the page still shows both at their place.
  var summary = document.getElementById("error-summary");
  var preview = document.getElementById("preview");
  var target = summary || preview;
  if (target) {
    target.focus();
    if (target.scrollIntoView) { target.scrollIntoView({block: "start"}); }
  }
});
// The person's page (/me): a QR code on the receipt opens /me#<code>. The fragment never reaches
// a server or a Referer; move it into the form, take it out of the address bar and history,
// and send the form (a POST: the code never appears in a URL the server sees).
function carryCodeFromFragment() {
  var form = document.getElementById("code-form");
  var input = document.getElementById("code");
  var carried = window.location.hash.replace(/^#/, "");
  if (!form || !input || carried.replace(/[-\s]/g, "").length !== 20) { return; }
  history.replaceState(null, "", window.location.pathname + window.location.search);
  input.value = carried;
  form.submit();
}
document.addEventListener("DOMContentLoaded", carryCodeFromFragment);
window.addEventListener("hashchange", carryCodeFromFragment);
