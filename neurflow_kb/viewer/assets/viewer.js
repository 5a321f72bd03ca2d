(function () {
  "use strict";
  const payload = JSON.parse(document.getElementById("circuit-data").textContent);
  const el = (tag, attrs, ...kids) => {
    const n = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") n.className = v; else if (k === "text") n.textContent = v; else n.setAttribute(k, v);
    }
    for (const k of kids) if (k != null) n.append(k);
    return n;
  };
  const fmt = (v, d = 3) => (v == null ? "-" : (v >= 0 ? "+" : "") + Number(v).toFixed(d));
  // shares of the class as people read them: "+12.3%" (signed) or "12.3%"
  const pct = (v, signed) => {
    if (v == null) return "-";
    const t = (100 * v).toFixed(1);
    return (signed && v > 0 && t !== "0.0" ? "+" : "") + (t === "-0.0" ? "0.0" : t) + "%";
  };
  const thumbs = (list, n) => el("div", {class: "thumbs"},
    ...list.slice(0, n).map(b => el("img", {src: "data:image/png;base64," + b, alt: "exemplar crop"})));
  const labelChips = (g, n) => (g.labels && g.labels.length)
    ? el("div", {class: "labels"}, ...g.labels.slice(0, n).map(l =>
        el("span", {class: "lab"}, l.concept + " ", el("span", {class: "score", text: l.score.toFixed(2)}))))
    : el("div", {class: "labels nolabels", text: "not labelled"});
  const ns = "http://www.w3.org/2000/svg";
  const edgeShare = e => (e.abs_share != null ? e.abs_share : Math.abs(e.weight || 0));

  // One circuit drawn into `graph` (a <main> holding an <svg class="edges">): layer rows, class on top,
  // a card per group ranked by its share of the class, edges whose width follows the share they pass.
  function Circuit(graph, svg, data, onSelect) {
    const classId = data.classNode.id || "class";
    const byId = new Map(data.groups.map(g => [g.id, g]));
    const up = new Map(), down = new Map();
    for (const e of data.edges) {
      if (!down.has(e.source)) down.set(e.source, []);
      down.get(e.source).push(e);
      if (!up.has(e.target)) up.set(e.target, []);
      up.get(e.target).push(e);
    }
    const maxS = Math.max(1e-12, ...data.edges.map(edgeShare));
    const name = id => id === classId ? "class " + data.classNode.name
      : (byId.has(id) ? byId.get(id).layer + " g" + byId.get(id).index : id);
    const cards = new Map();
    const depths = [...new Set(data.groups.map(g => g.depth))].sort((a, b) => b - a);
    const layerName = new Map(data.layers.map(l => [l.depth, l]));
    const classRow = el("section", {class: "layer", "data-depth": String(data.classNode.depth)},
      el("h2", {text: "output"}));
    const classCard = el("div", {class: "group class-node", "data-id": classId},
      el("div", {class: "head"}, el("span", {text: "class " + data.classNode.index + " '" + data.classNode.name + "'"})),
      el("div", {class: "infl", text: data.meta.model + " (" + (data.meta.weights || "") + ")"}));
    classRow.append(el("div", {class: "groups"}, classCard));
    cards.set(classId, classCard);
    graph.append(classRow);
    for (const d of depths) {
      const info = layerName.get(d) || {name: "depth " + d, channels: ""};
      const gs = data.groups.filter(g => g.depth === d)
        .sort((a, b) => (b.abs_share || 0) - (a.abs_share || 0) || a.index - b.index);
      const row = el("section", {class: "layer", "data-depth": String(d)},
        el("h2", {}, info.name + " ", el("span", {text: "(" + gs.length + " groups, " + info.channels + " channels)"})));
      const box = el("div", {class: "groups"});
      for (const g of gs) {
        const bar = el("div", {class: "share-bar", title: "share of the class through this group"},
          el("span", {style: "width:" + Math.max(0, Math.min(100, 100 * (g.abs_share || 0))).toFixed(1) + "%"}));
        const card = el("div", {class: "group", "data-id": g.id, title: "click for details"},
          el("div", {class: "head"}, el("span", {text: "g" + g.index + " - " + g.members.length + (g.members.length === 1 ? " node" : " nodes")}),
            el("span", {class: "infl", text: pct(g.abs_share, false)})),
          bar, thumbs(g.thumbnails, 4), labelChips(g, 3));
        card.addEventListener("click", () => onSelect(g.id));
        cards.set(g.id, card);
        box.append(card);
      }
      row.append(box);
      graph.append(row);
    }
    let selected = null;
    function draw(min) {
      const box = graph.getBoundingClientRect();
      svg.setAttribute("width", graph.scrollWidth);
      svg.setAttribute("height", graph.scrollHeight);
      svg.replaceChildren();
      let shown = 0;
      for (const e of data.edges) {
        if (edgeShare(e) < min) continue;
        const a = cards.get(e.source), b = cards.get(e.target);
        if (!a || !b) continue;
        const ra = a.getBoundingClientRect(), rb = b.getBoundingClientRect();
        const x1 = ra.left + ra.width / 2 - box.left, y1 = ra.top - box.top;
        const x2 = rb.left + rb.width / 2 - box.left, y2 = rb.bottom - box.top;
        const my = (y1 + y2) / 2;
        const p = document.createElementNS(ns, "path");
        p.setAttribute("d", `M${x1},${y1} C${x1},${my} ${x2},${my} ${x2},${y2}`);
        p.setAttribute("stroke-width", (0.6 + 6 * edgeShare(e) / maxS).toFixed(2));
        let cls = (e.weight || 0) >= 0 ? "pos" : "neg";
        if (selected) cls += (e.source === selected || e.target === selected) ? " hot" : " dim";
        p.setAttribute("class", cls);
        p.setAttribute("data-source", e.source);
        p.setAttribute("data-target", e.target);
        const t = document.createElementNS(ns, "title");
        t.textContent = name(e.source) + " -> " + name(e.target) + ": passes " + pct(e.abs_share, false) +
          " of the class (weight " + fmt(e.weight, 4) + ")";
        p.append(t);
        svg.append(p);
        shown++;
      }
      return shown;
    }
    function edgeTable(title, list, other, onPick) {
      const rows = list.slice().sort((a, b) => edgeShare(b) - edgeShare(a)).map(e => {
        const id = other(e);
        const link = id === classId ? el("span", {text: name(id)}) : el("a", {text: name(id)});
        if (id !== classId) link.addEventListener("click", () => onPick(id));
        return el("tr", {}, el("td", {}, link), el("td", {class: "num", text: pct(e.abs_share, false)}),
          el("td", {class: "num", text: fmt(e.weight, 4)}));
      });
      return [el("h4", {text: title + " (" + list.length + ")"}),
        rows.length ? el("table", {}, el("tr", {}, el("th", {text: "group"}), el("th", {class: "num", text: "share passed"}),
          el("th", {class: "num", text: "weight"})), ...rows)
                    : el("div", {class: "hint", text: "none"})];
    }
    function details(id, onPick) {
      const g = byId.get(id);
      return [
        el("h3", {text: g.layer + " group " + g.index}),
        el("div", {class: "hint", text: "id " + g.id}),
        el("table", {},
          el("tr", {}, el("td", {text: "share of the class"}), el("td", {class: "num", text: pct(g.abs_share, false)})),
          el("tr", {}, el("td", {text: "signed share"}), el("td", {class: "num", text: pct(g.share, true)})),
          el("tr", {}, el("td", {text: "influence (summed path weight)"}), el("td", {class: "num", text: fmt(g.influence, 4)})),
          el("tr", {}, el("td", {text: "nodes (neuron, sub-concept)"}), el("td", {class: "num", text: String(g.members.length)})),
          el("tr", {}, el("td", {text: "neurons"}), el("td", {class: "num", text: String(g.neurons)})),
          el("tr", {}, el("td", {text: "silhouette"}), el("td", {class: "num", text: g.silhouette == null ? "-" : g.silhouette.toFixed(3)}))),
        el("h4", {text: "exemplars"}), thumbs(g.thumbnails, 8),
        el("h4", {text: "labels"}),
        (g.labels && g.labels.length)
          ? el("table", {class: "label-table"}, el("tr", {}, el("th", {text: "#"}), el("th", {text: "concept"}), el("th", {class: "num", text: "score"})),
              ...g.labels.map(l => el("tr", {}, el("td", {text: String(l.rank)}), el("td", {text: l.concept}), el("td", {class: "num", text: l.score.toFixed(3)}))))
          : el("div", {class: "hint", text: "not labelled (neurflow-kb label)"}),
        el("h4", {text: "members (" + g.members.length + ")"}),
        el("table", {class: "member-table"}, el("tr", {}, el("th", {text: "neuron"}), el("th", {text: "sub-concept"}), el("th", {class: "num", text: "activation"})),
          ...g.members.map(m => el("tr", {}, el("td", {text: String(m.neuron)}), el("td", {text: String(m.subconcept)}), el("td", {class: "num", text: m.activation.toFixed(3)})))),
        ...edgeTable("upstream groups", up.get(id) || [], e => e.source, onPick),
        ...edgeTable("downstream", down.get(id) || [], e => e.target, onPick)];
    }
    function mark(id) {
      selected = id;
      const related = new Set(id ? [...(up.get(id) || []).map(e => e.source), ...(down.get(id) || []).map(e => e.target)] : []);
      for (const [cid, card] of cards) {
        card.classList.toggle("selected", cid === id);
        card.classList.toggle("related", related.has(cid));
      }
    }
    return {data, cards, byId, maxS, draw, details, mark, has: id => byId.has(id)};
  }

  const slider = document.getElementById("minw");
  const sliderOut = document.getElementById("minw-out");
  const detailsBox = document.getElementById("details");

  if (!payload.compare) {
    const graph = document.getElementById("graph");
    const c = Circuit(graph, document.getElementById("edges"), payload, select);
    function draw() {
      const min = Number(slider.value) / 100 * c.maxS;
      sliderOut.textContent = pct(min, false);
      const shown = c.draw(min);
      document.getElementById("edge-count").textContent = shown + " / " + payload.edges.length + " edges";
    }
    function select(id) {
      c.mark(id);
      detailsBox.replaceChildren(...c.details(id, select));
      detailsBox.dataset.group = id;
      draw();
    }
    slider.addEventListener("input", draw);
    window.addEventListener("resize", draw);
    document.getElementById("group-count").textContent = payload.groups.length + " groups";
    draw();
    window.neurflowView = {select, data: payload};
    return;
  }

  // Two circuits side by side; groups matched across them (shared neurons within a model, CLIP embedding
  // cosine across models) are linked by dashed lines and highlighted.
  const layout = document.getElementById("layout");
  const panes = el("div", {id: "compare"});
  const linkSvg = document.createElementNS(ns, "svg");
  linkSvg.setAttribute("id", "links");
  panes.append(linkSvg);
  const sides = {};
  const partners = new Map();
  for (const l of payload.links) {
    if (!partners.has(l.a)) partners.set(l.a, []);
    if (!partners.has(l.b)) partners.set(l.b, []);
    partners.get(l.a).push(l);
    partners.get(l.b).push(l);
  }
  const maxL = Math.max(1e-12, ...payload.links.map(l => l.score));
  let selected = null;
  for (const side of ["a", "b"]) {
    const data = payload[side];
    const graph = el("main", {class: "pane", id: "pane-" + side, "data-side": side},
      el("div", {class: "pane-title", text: data.title}));
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("class", "edges");
    graph.prepend(svg);
    panes.append(graph);
    sides[side] = Circuit(graph, svg, data, select);
  }
  layout.replaceChildren(panes, detailsBox);
  for (const [id, list] of partners) {
    const s = sides.a.cards.get(id) || sides.b.cards.get(id);
    if (!s) continue;
    s.classList.add("matched");
    const head = s.querySelector(".head span");
    if (head) head.append(el("span", {class: "match-badge", title: "matched groups in the other circuit",
      text: " \u21c4" + list.length}));
  }
  const sideOf = id => (sides.a.has(id) ? sides.a : sides.b);
  function drawLinks() {
    const box = panes.getBoundingClientRect();
    linkSvg.setAttribute("width", panes.scrollWidth);
    linkSvg.setAttribute("height", panes.scrollHeight);
    linkSvg.replaceChildren();
    for (const l of payload.links) {
      const a = sides.a.cards.get(l.a), b = sides.b.cards.get(l.b);
      if (!a || !b) continue;
      const ra = a.getBoundingClientRect(), rb = b.getBoundingClientRect();
      const x1 = ra.right - box.left, y1 = ra.top + ra.height / 2 - box.top;
      const x2 = rb.left - box.left, y2 = rb.top + rb.height / 2 - box.top;
      const p = document.createElementNS(ns, "path");
      const mx = (x1 + x2) / 2;
      p.setAttribute("d", `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`);
      p.setAttribute("stroke-width", (0.8 + 4 * l.score / maxL).toFixed(2));
      let cls = "link";
      if (selected) cls += (l.a === selected || l.b === selected) ? " hot" : " dim";
      p.setAttribute("class", cls);
      p.setAttribute("data-a", l.a);
      p.setAttribute("data-b", l.b);
      const t = document.createElementNS(ns, "title");
      t.textContent = l.label + " " + l.score.toFixed(3);
      p.append(t);
      linkSvg.append(p);
    }
  }
  function draw() {
    const min = Number(slider.value) / 100 * Math.max(sides.a.maxS, sides.b.maxS);
    sliderOut.textContent = pct(min, false);
    const shown = sides.a.draw(min) + sides.b.draw(min);
    document.getElementById("edge-count").textContent = shown + " / " +
      (payload.a.edges.length + payload.b.edges.length) + " edges, " + payload.links.length + " matches";
    drawLinks();
  }
  function select(id) {
    selected = id;
    const own = sideOf(id), other = own === sides.a ? sides.b : sides.a;
    own.mark(id);
    other.mark(null);
    const matched = new Set((partners.get(id) || []).map(l => (l.a === id ? l.b : l.a)));
    for (const [cid, card] of other.cards) card.classList.toggle("match-hot", matched.has(cid));
    for (const [, card] of own.cards) card.classList.remove("match-hot");
    const rows = (partners.get(id) || []).slice().sort((x, y) => y.score - x.score).map(l => {
      const pid = l.a === id ? l.b : l.a;
      const g = other.byId.get(pid);
      const link = el("a", {text: g ? g.layer + " g" + g.index : pid});
      link.addEventListener("click", () => select(pid));
      return el("tr", {}, el("td", {}, link), el("td", {class: "num", text: l.score.toFixed(3)}));
    });
    detailsBox.replaceChildren(el("div", {class: "hint", text: own.data.title}), ...own.details(id, select),
      el("h4", {text: "matched in " + other.data.title + " (" + rows.length + ")"}),
      rows.length ? el("table", {class: "match-table"}, el("tr", {}, el("th", {text: "group"}),
        el("th", {class: "num", text: payload.link_kind})), ...rows) : el("div", {class: "hint", text: "none"}));
    detailsBox.dataset.group = id;
    draw();
  }
  slider.addEventListener("input", draw);
  window.addEventListener("resize", draw);
  document.getElementById("group-count").textContent =
    (payload.a.groups.length + payload.b.groups.length) + " groups";
  draw();
  window.neurflowView = {select, data: payload};
})();
