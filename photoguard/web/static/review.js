// Review page: keyboard shortcuts. Everything here also works without this script (links and forms).
(function () {
  "use strict";
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    var tag = (event.target && event.target.tagName) || "";
    if (tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT") return;
    var target = document.querySelector('[data-key="' + event.key + '"]');
    if (!target) return;
    event.preventDefault();
    target.click();
  });
})();
