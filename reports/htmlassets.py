"""The style sheet and the script that report.html carries inline (no external reference)."""

STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; max-width: 76rem; margin: 2rem auto;
       padding: 0 1rem; color: #1b1b1b; }
[hidden] { display: none !important; }
table { border-collapse: collapse; margin: 0.8rem 0; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 0.2rem 0.45rem; vertical-align: top; }
th { background: #f2f2f2; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
table.sortable th { cursor: pointer; }
table.sortable th:after { content: " \\2195"; color: #999; }
td.thumb { padding: 2px; }
td.thumb img { width: 120px; height: auto; border: 0; display: block; }
blockquote { border-left: 4px solid #ddd; margin: 0.5rem 0; padding: 0.1rem 0.9rem;
             color: #444; }
code { background: #f4f4f4; padding: 0 0.2rem; }
figure { margin: 0.6rem 0; }
figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 12px; color: #666; }
nav > ul { columns: 2; }
.badge { padding: 0 0.4rem; border-radius: 0.6rem; font-weight: 600; white-space: nowrap; }
.v-reproduced, .o-pass { background: #d4edda; color: #155724; }
.v-partly-reproduced, .o-straddle { background: #fff3cd; color: #6d5200; }
.v-not-reproduced, .o-fail { background: #f8d7da; color: #721c24; }
.v-not-evaluated, .o-short { background: #e2e3e5; color: #383d41; }
.v-answered { background: #d6e4f0; color: #0b3d62; }
section.claim { border-left: 5px solid #ccc; padding-left: 0.9rem; margin: 1.5rem 0; }
section.claim[data-verdict="reproduced"] { border-color: #28a745; }
section.claim[data-verdict="partly reproduced"] { border-color: #e0a800; }
section.claim[data-verdict="not reproduced"] { border-color: #dc3545; }
section.claim[data-verdict="answered"] { border-color: #2f6fa3; }
#filters { display: flex; flex-wrap: wrap; gap: 0.4rem 1.2rem; align-items: center;
           background: #f7f7f7; padding: 0.5rem 0.8rem; border: 1px solid #ddd; }
#filters fieldset { border: 0; margin: 0; padding: 0; }
#filters legend { float: left; margin-right: 0.5rem; font-weight: 600; }
#filters label { white-space: nowrap; margin-right: 0.5rem; }
#shown { color: #555; }
details { margin: 0.6rem 0; }
summary { cursor: pointer; color: #2f6fa3; }
"""

# Sorts a table.sortable by the clicked column; a cell's data-key (a number) wins over its text.
# Filters: a claim (its summary row and its section share data-claim) is shown when its verdict
# is ticked, its family chosen (or all), it is borderline if only those are asked for, and its
# text holds every word of the search. A family heading with none of its claims shown hides.
SCRIPT = """
document.querySelectorAll("table.sortable th").forEach(function (th) {
  th.addEventListener("click", function () {
    var body = th.closest("table").tBodies[0], col = th.cellIndex;
    var dir = th.dataset.dir === "up" ? -1 : 1;
    th.dataset.dir = dir === 1 ? "up" : "down";
    var key = function (row) {
      var c = row.cells[col];
      if (c.dataset.key === undefined) return c.textContent.trim().toLowerCase();
      return c.dataset.key === "" ? Infinity : parseFloat(c.dataset.key);
    };
    Array.prototype.slice.call(body.rows).sort(function (a, b) {
      var x = key(a), y = key(b);
      return (x > y ? 1 : x < y ? -1 : 0) * dir;
    }).forEach(function (row) { body.appendChild(row); });
  });
});
(function () {
  var form = document.getElementById("filters");
  if (!form) return;
  var boxes = Array.prototype.slice.call(form.querySelectorAll("input[name=verdict]"));
  var family = document.getElementById("family");
  var border = document.getElementById("borderline");
  var search = document.getElementById("search");
  var shown = document.getElementById("shown");
  var items = Array.prototype.slice.call(document.querySelectorAll("[data-claim]"));
  var text = {};
  items.forEach(function (el) {
    var k = el.dataset.claim;
    text[k] = (text[k] || "") + " " + el.textContent.toLowerCase();
  });
  function apply() {
    var verdicts = {};
    boxes.forEach(function (b) { if (b.checked) verdicts[b.value] = true; });
    var words = search.value.toLowerCase().split(/\\s+/).filter(Boolean);
    var visible = 0, total = 0;
    items.forEach(function (el) {
      var d = el.dataset;
      var ok = verdicts[d.verdict] === true && (!family.value || d.family === family.value) &&
        (!border.checked || d.borderline === "yes") &&
        words.every(function (w) { return text[d.claim].indexOf(w) >= 0; });
      el.hidden = !ok;
      if (el.tagName === "TR") { total += 1; if (ok) visible += 1; }
    });
    shown.textContent = visible + " of " + total + " claims shown";
    document.querySelectorAll("h2").forEach(function (h) {  // a family with none shown
      var el = h.nextElementSibling, seen = false, any = false;
      for (; el && el.tagName !== "H2"; el = el.nextElementSibling) {
        if (el.tagName === "SECTION") { seen = true; any = any || !el.hidden; }
      }
      if (seen) h.hidden = !any;
    });
  }
  boxes.concat([family, border, search]).forEach(function (c) {
    c.addEventListener("input", apply);
    c.addEventListener("change", apply);
  });
  apply();
})();
"""
