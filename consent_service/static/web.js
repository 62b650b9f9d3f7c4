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
