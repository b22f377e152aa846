// Who's who: keys. Y answers yes, N no, the arrows move between faces; picking someone else from a card's list
// sends it (a change made with the keyboard waits for "That's who", so moving through the list never answers).
// Everything also works without this script: every answer is a plain form.
(function () {
  "use strict";
  document.documentElement.classList.add("js");
  var holder = document.getElementById("cards");
  var cards = Array.prototype.slice.call(document.querySelectorAll(".who-card"));
  if (!holder || !cards.length) return;
  var current = 0;
  var sending = false;

  function mark(i) {
    current = Math.max(0, Math.min(cards.length - 1, i));
    cards.forEach(function (card, j) { card.classList.toggle("current", j === current); });
    return cards[current];
  }

  function go(i) {
    var card = mark(i);
    card.focus({ preventScroll: true });
    card.scrollIntoView({ block: "center" });
  }

  cards.forEach(function (card, i) {
    card.addEventListener("focusin", function () { mark(i); });
    card.addEventListener("pointerdown", function () { mark(i); });
    var select = card.querySelector("select");
    var send = card.querySelector('[data-answer="someone"]');
    if (!select || !send) return;
    var typed = false;
    select.addEventListener("keydown", function () { typed = true; });
    select.addEventListener("focus", function () { typed = false; });
    select.addEventListener("change", function () {
      if (select.value && !typed) send.click();
    });
  });

  document.addEventListener("submit", function (event) {
    if (sending) { event.preventDefault(); return; }   // one answer per card: a held-down key sends it once
    sending = true;
  });

  window.addEventListener("pageshow", function () { sending = false; });   // back to the page: keys work again

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || sending) return;
    var tag = (event.target && event.target.tagName) || "";
    if (tag === "SELECT" || tag === "TEXTAREA" || tag === "INPUT") return;
    var key = event.key;
    var button = null;
    if (key === "y" || key === "Y") button = cards[current].querySelector('[data-answer="yes"]');
    else if (key === "n" || key === "N") button = cards[current].querySelector('[data-answer="no"]');
    else if (key === "ArrowDown" || key === "ArrowRight") { event.preventDefault(); go(current + 1); return; }
    else if (key === "ArrowUp" || key === "ArrowLeft") { event.preventDefault(); go(current - 1); return; }
    if (!button) return;
    event.preventDefault();
    button.click();
  });

  var at = parseInt(holder.getAttribute("data-at") || "0", 10) || 0;
  if (at > 0 || window.location.search.indexOf("at=") >= 0) go(at);
  else mark(0);
})();
