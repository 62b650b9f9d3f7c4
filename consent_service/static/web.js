/* Progressive enhancement only: every page works without this script. */
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  // "Print" buttons are hidden until there is a script to make them work.
  document.querySelectorAll(".js-print").forEach(function (button) {
    button.hidden = false;
    button.addEventListener("click", function () { window.print(); });
  });
  // After a refused form, move keyboard and screen-reader focus to the list of problems.
  var summary = document.getElementById("error-summary");
  if (summary) { summary.focus(); }
});
