// Review page: drag a box on the photo to mark an area to obscure. Fills the coordinate form below the
// photo (which also works typed in by hand, without this script); the manager then presses its button.
(function () {
  "use strict";
  var svg = document.getElementById("photo");
  var form = document.getElementById("box-form");
  if (!svg || !form || !svg.getScreenCTM) return;
  var NS = "http://www.w3.org/2000/svg";
  var rect = null, start = null;
  var width = Number(svg.dataset.width), height = Number(svg.dataset.height);

  function point(event) {
    var p = svg.createSVGPoint();
    p.x = event.clientX; p.y = event.clientY;
    var q = p.matrixTransform(svg.getScreenCTM().inverse());
    return { x: Math.max(0, Math.min(width, q.x)), y: Math.max(0, Math.min(height, q.y)) };
  }
  function set(name, value) { document.getElementById("box-" + name).value = Math.round(value); }
  function update(a, b) {
    var left = Math.min(a.x, b.x), top = Math.min(a.y, b.y);
    var right = Math.max(a.x, b.x), bottom = Math.max(a.y, b.y);
    rect.setAttribute("x", left); rect.setAttribute("y", top);
    rect.setAttribute("width", right - left); rect.setAttribute("height", bottom - top);
    set("left", left); set("top", top); set("right", right); set("bottom", bottom);
  }
  svg.classList.add("drawable");
  svg.addEventListener("pointerdown", function (event) {
    if (event.button !== 0) return;
    event.preventDefault();
    start = point(event);
    if (!rect) {
      rect = document.createElementNS(NS, "rect");
      rect.setAttribute("class", "drawing");
      svg.appendChild(rect);
    }
    svg.setPointerCapture(event.pointerId);
    update(start, start);
  });
  svg.addEventListener("pointermove", function (event) {
    if (start) update(start, point(event));
  });
  svg.addEventListener("pointerup", function (event) {
    if (!start) return;
    update(start, point(event));
    start = null;
    form.querySelector("button").focus();
  });
})();
