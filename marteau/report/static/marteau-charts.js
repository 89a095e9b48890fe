/* Marteau's interactive charts: uPlot charts drawn from the specs of
   marteau/report/interactive.py. Hover shows the values in the legend, a drag
   zooms a range (double-click resets it), a click on a legend entry hides or
   shows its series. Used by the HTML report (inlined, specs in the page's
   #chart-data block) and by the service's job page (the same block, then
   `MarteauCharts.drawAll` at each event of its SSE stream).
   Text from the test (titles, labels) is only ever set as text. */
(function () {
  "use strict";
  var charts = {};
  var HEIGHT = 320;
  var SMALL = 260;

  /* As the tables' milliseconds: 3 significant digits or more, thousands separated. */
  function fmt(v) {
    if (v === null || v === undefined || !isFinite(v)) { return "--"; }
    var a = Math.abs(v);
    if (a >= 100) { return Math.round(v).toLocaleString("en-US"); }
    if (a === 0) { return "0"; }
    return v.toFixed(Math.max(0, 2 - Math.floor(Math.log10(a))));
  }

  function axisValues(u, splits) {
    return splits.map(function (v) {
      return v === null ? "" : Number.isInteger(v) ? v.toLocaleString("en-US") : fmt(v);
    });
  }

  function range(a) {
    return function (u, lo, hi) {
      if (lo === null || hi === null) { return [a.min === undefined ? 0 : a.min, a.max || 1]; }
      if (a.log) { return uPlot.rangeLog(lo, hi, 10, true); }
      var low = a.min === undefined ? lo : Math.min(a.min, lo);
      var high = a.max === undefined ? hi : Math.max(a.max, hi);
      var pad = (high - low) * 0.06 || Math.abs(high) * 0.1 || 1;
      return [low === 0 ? 0 : low - pad, high + pad];
    };
  }

  function clipped(u, draw) {
    var ctx = u.ctx;
    ctx.save();
    ctx.beginPath();
    ctx.rect(u.bbox.left, u.bbox.top, u.bbox.width, u.bbox.height);
    ctx.clip();
    draw(ctx, uPlot.pxRatio);
    ctx.restore();
  }

  /* The hooks read the chart's current spec (`update` replaces it), else the first. */
  function specOf(u, spec) { return u.spec || spec; }

  /* Shaded x ranges (the cycles), labelled at the bottom. */
  function drawBands(first) {
    return function (u) {
      var spec = specOf(u, first);
      clipped(u, function (ctx, px) {
        ctx.font = (11 * px) + "px sans-serif";
        ctx.textAlign = "center";
        spec.bands.forEach(function (band, i) {
          var x0 = u.valToPos(band[0], "x", true), x1 = u.valToPos(band[1], "x", true);
          if (i % 2 === 0) {
            ctx.fillStyle = "#eef3f8";
            ctx.fillRect(x0, u.bbox.top, x1 - x0, u.bbox.height);
          }
          ctx.fillStyle = "#5b6775";
          ctx.fillText(band[2], (x0 + x1) / 2, u.bbox.top + u.bbox.height - 5 * px);
        });
      });
    };
  }

  /* Labelled vertical lines (distribution: MED, P95, P99, Apdex T). */
  function drawMarks(first) {
    return function (u) {
      var spec = specOf(u, first);
      clipped(u, function (ctx, px) {
        ctx.font = (11 * px) + "px sans-serif";
        ctx.lineWidth = 1.2 * px;
        spec.marks.forEach(function (mark, i) {
          if (mark[1] === null) { return; }
          var x = u.valToPos(mark[1], "x", true);
          ctx.strokeStyle = ctx.fillStyle = mark[2];
          ctx.setLineDash([5 * px, 4 * px]);
          ctx.beginPath();
          ctx.moveTo(x, u.bbox.top);
          ctx.lineTo(x, u.bbox.top + u.bbox.height);
          ctx.stroke();
          ctx.fillText(mark[0], x + 4 * px, u.bbox.top + (14 + 14 * i) * px);
        });
      });
    };
  }

  /* Candlesticks: whisker MIN..P95, box P10..P90, MED bar; each part while its series shows. */
  function drawCandles(spec) {
    var k = spec.candles.map(function (i) { return i + 1; });
    return function (u) {
      var s = u.series;
      clipped(u, function (ctx, px) {
        var width = Math.max(6 * px, (u.valToPos(1, "x", true) - u.valToPos(0, "x", true)) * 0.4);
        u.data[0].forEach(function (xv, i) {
          var x = u.valToPos(xv, "x", true);
          var y = function (j) {
            var v = u.data[j][i];
            return s[j].show && v !== null ? u.valToPos(v, s[j].scale, true) : null;
          };
          var low = y(k[0]), high = y(k[4]), p10 = y(k[1]), p90 = y(k[3]), med = y(k[2]);
          ctx.strokeStyle = spec.series[k[2] - 1].color;
          ctx.lineWidth = 1.2 * px;
          if (low !== null && high !== null) {
            ctx.beginPath(); ctx.moveTo(x, low); ctx.lineTo(x, high); ctx.stroke();
          }
          if (p10 !== null && p90 !== null) {
            ctx.fillStyle = spec.series[k[1] - 1].color;
            ctx.fillRect(x - width / 2, p90, width, p10 - p90);
            ctx.strokeRect(x - width / 2, p90, width, p10 - p90);
          }
          if (med !== null) {
            ctx.lineWidth = 2.5 * px;
            ctx.beginPath(); ctx.moveTo(x - width / 2, med); ctx.lineTo(x + width / 2, med); ctx.stroke();
          }
        });
      });
    };
  }

  function options(spec, width) {
    var cats = spec.xticks;
    var scales = { x: { time: false } };
    if (spec.xlog) { scales.x.distr = 3; }
    if (cats) { scales.x.range = function () { return [-0.5, cats.length - 0.5]; }; }
    var xAxis = { label: spec.xlabel, stroke: "#3b4653", grid: { stroke: "#e6e9ee" }, values: axisValues };
    if (cats) {
      xAxis.splits = function () { return cats.map(function (_c, i) { return i; }); };
      xAxis.values = function (u, splits) { return splits.map(function (v) { return cats[v] || ""; }); };
    }
    var axes = [xAxis];
    spec.axes.forEach(function (a, i) {
      scales["y" + i] = { distr: a.log ? 3 : 1, range: range(a) };
      axes.push({
        scale: "y" + i, label: a.label, side: i === 0 ? 3 : 1, size: 64, stroke: "#3b4653",
        grid: { show: i === 0, stroke: "#e6e9ee" }, values: axisValues
      });
    });
    var series = [{
      label: cats ? "CUs" : spec.xlabel,
      value: function (u, v) { return v === null ? "--" : cats ? cats[v] : fmt(v); }
    }];
    spec.series.forEach(function (s) {
      var o = {
        label: s.label, stroke: s.color, width: s.width || 1.5, scale: "y" + (s.axis || 0),
        spanGaps: false, value: function (u, v) { return fmt(v); },
        points: { show: !!s.points, size: 7, fill: s.color }
      };
      if (s.dash) { o.dash = [6, 4]; }
      if (s.fill) { o.fill = s.fill; }
      if (s.step) { o.paths = uPlot.paths.stepped({ align: 1 }); }
      if (s.line === false) { o.paths = function () { return null; }; }
      series.push(o);
    });
    var hooks = { drawClear: [], draw: [] };
    if (spec.bands) { hooks.drawClear.push(drawBands(spec)); }
    if (spec.marks) { hooks.draw.push(drawMarks(spec)); }
    if (spec.candles) { hooks.draw.push(drawCandles(spec)); }
    return {
      title: spec.title, width: width, height: spec.small ? SMALL : HEIGHT,
      scales: scales, axes: axes, series: series, hooks: hooks,
      cursor: { drag: { x: !cats, y: false }, points: { size: 8 } },
      legend: { live: true }
    };
  }

  function data(spec) {
    return [spec.x].concat(spec.series.map(function (s) { return s.y; }));
  }

  function widthOf(element) {
    return Math.max(320, Math.floor(element.clientWidth || 864));
  }

  /* Draw `spec` into `figure` (its PNG, if any, hidden) and keep it as charts[name]. */
  function draw(figure, spec, name) {
    var holder = figure.querySelector(".uplot-holder");
    if (!holder) {
      holder = document.createElement("div");
      holder.className = "uplot-holder";
      figure.insertBefore(holder, figure.firstChild);
    }
    holder.textContent = "";
    var u = new uPlot(options(spec, widthOf(figure)), data(spec), holder);
    u.spec = spec;
    var image = figure.querySelector("img");
    if (image) { image.hidden = true; }
    figure.classList.add("interactive");
    charts[name] = u;
    return u;
  }

  /* New data for a drawn chart (drawn at its first data); drawn again when its series
     changed (a new cycle). A range the reader zoomed to stays until a double-click. */
  function update(figure, spec, name) {
    var u = charts[name];
    var same = u && u.spec.series.length === spec.series.length &&
      u.spec.series.every(function (s, i) { return s.label === spec.series[i].label; });
    if (!same) {
      if (u) { u.destroy(); }
      return draw(figure, spec, name);
    }
    u.spec = spec;
    u.setData(data(spec));  /* uPlot keeps a zoomed x range */
    return u;
  }

  /* Each spec of {name: spec} that has data into the page's #chart-<name> figure. */
  function drawAll(specs) {
    Object.keys(specs).forEach(function (name) {
      var figure = document.getElementById("chart-" + name);
      var spec = specs[name];
      if (figure && spec.x.length && spec.series.length) { update(figure, spec, name); }
    });
  }

  function resize() {
    Object.keys(charts).forEach(function (name) {
      var u = charts[name];
      var figure = u.root.parentNode.parentNode;
      u.setSize({ width: widthOf(figure), height: u.height });
    });
  }

  function drawPage() {
    var block = document.getElementById("chart-data");
    if (!block) { return; }
    drawAll(JSON.parse(block.textContent));
  }

  window.MarteauCharts = { charts: charts, drawAll: drawAll, format: fmt };
  window.addEventListener("resize", resize);
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", drawPage);
  } else {
    drawPage();
  }
})();
