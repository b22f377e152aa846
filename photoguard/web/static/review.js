// Review page: keyboard shortcuts. Everything here also works without this script (links and forms).
(function () {
  "use strict";
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    var el = event.target || {};
    var tag = el.tagName || "";
    var typing = tag === "TEXTAREA" || tag === "SELECT" ||
      (tag === "INPUT" && ["checkbox", "radio", "button", "submit"].indexOf(el.type) < 0);
    if (typing) return;
    var target = document.querySelector('[data-key="' + event.key + '"]');
    if (!target) return;
    event.preventDefault();
    target.click();
  });
})();
