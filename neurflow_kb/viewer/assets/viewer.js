(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("circuit-data").textContent);
  const byId = new Map(data.groups.map(g => [g.id, g]));
  const up = new Map(), down = new Map();
  for (const e of data.edges) {
    if (!down.has(e.source)) down.set(e.source, []);
    down.get(e.source).push(e);
    if (!up.has(e.target)) up.set(e.target, []);
    up.get(e.target).push(e);
  }
  const maxW = Math.max(1e-12, ...data.edges.map(e => Math.abs(e.weight || 0)));
  const el = (tag, attrs, ...kids) => {
    const n = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (k === "class") n.className = v; else if (k === "text") n.textContent = v; else n.setAttribute(k, v);
    }
    for (const k of kids) if (k != null) n.append(k);
    return n;
  };
  const fmt = (v, d = 3) => (v == null ? "-" : (v >= 0 ? "+" : "") + Number(v).toFixed(d));
  const thumbs = (list, n) => el("div", {class: "thumbs"},
    ...list.slice(0, n).map(b => el("img", {src: "data:image/png;base64," + b, alt: "exemplar crop"})));
  const labelChips = (g, n) => (g.labels && g.labels.length)
    ? el("div", {class: "labels"}, ...g.labels.slice(0, n).map(l =>
        el("span", {class: "lab"}, l.concept + " ", el("span", {class: "score", text: l.score.toFixed(2)}))))
    : el("div", {class: "labels nolabels", text: "not labelled"});
  const name = id => id === "class" ? "class " + data.classNode.name
    : (byId.has(id) ? byId.get(id).layer + " g" + byId.get(id).index : id);

  const graph = document.getElementById("graph");
  const svg = document.getElementById("edges");
  const cards = new Map();
  const depths = [...new Set(data.groups.map(g => g.depth))].sort((a, b) => b - a);
  const layerName = new Map(data.layers.map(l => [l.depth, l]));

  const classRow = el("section", {class: "layer", "data-depth": String(data.classNode.depth)},
    el("h2", {text: "output"}));
  const classCard = el("div", {class: "group class-node", "data-id": "class"},
    el("div", {class: "head"}, el("span", {text: "class " + data.classNode.index + " '" + data.classNode.name + "'"})),
    el("div", {class: "infl", text: data.meta.model + " (" + (data.meta.weights || "") + ")"}));
  classRow.append(el("div", {class: "groups"}, classCard));
  cards.set("class", classCard);
  graph.append(classRow);
  for (const d of depths) {
    const info = layerName.get(d) || {name: "depth " + d, channels: ""};
    const gs = data.groups.filter(g => g.depth === d);
    const row = el("section", {class: "layer", "data-depth": String(d)},
      el("h2", {}, info.name + " ", el("span", {text: "(" + gs.length + " groups, " + info.channels + " channels)"})));
    const box = el("div", {class: "groups"});
    for (const g of gs) {
      const card = el("div", {class: "group", "data-id": g.id, title: "click for details"},
        el("div", {class: "head"}, el("span", {text: "g" + g.index + " - " + g.members.length + (g.members.length === 1 ? " node" : " nodes")}),
          el("span", {class: "infl", text: fmt(g.influence, 3)})),
        thumbs(g.thumbnails, 4), labelChips(g, 3));
      card.addEventListener("click", () => select(g.id));
      cards.set(g.id, card);
      box.append(card);
    }
    row.append(box);
    graph.append(row);
  }

  const slider = document.getElementById("minw");
  const sliderOut = document.getElementById("minw-out");
  let selected = null;
  function draw() {
    const min = Number(slider.value) / 100 * maxW;
    sliderOut.textContent = min.toFixed(3);
    const box = graph.getBoundingClientRect();
    svg.setAttribute("width", graph.scrollWidth);
    svg.setAttribute("height", graph.scrollHeight);
    svg.replaceChildren();
    const ns = "http://www.w3.org/2000/svg";
    let shown = 0;
    for (const e of data.edges) {
      if (Math.abs(e.weight || 0) < min) continue;
      const a = cards.get(e.source), b = cards.get(e.target);
      if (!a || !b) continue;
      const ra = a.getBoundingClientRect(), rb = b.getBoundingClientRect();
      const x1 = ra.left + ra.width / 2 - box.left, y1 = ra.top - box.top;
      const x2 = rb.left + rb.width / 2 - box.left, y2 = rb.bottom - box.top;
      const my = (y1 + y2) / 2;
      const p = document.createElementNS(ns, "path");
      p.setAttribute("d", `M${x1},${y1} C${x1},${my} ${x2},${my} ${x2},${y2}`);
      p.setAttribute("stroke-width", (0.6 + 5 * Math.abs(e.weight || 0) / maxW).toFixed(2));
      let cls = (e.weight || 0) >= 0 ? "pos" : "neg";
      if (selected) cls += (e.source === selected || e.target === selected) ? " hot" : " dim";
      p.setAttribute("class", cls);
      p.setAttribute("data-source", e.source);
      p.setAttribute("data-target", e.target);
      const t = document.createElementNS(ns, "title");
      t.textContent = name(e.source) + " -> " + name(e.target) + ": " + fmt(e.weight, 4);
      p.append(t);
      svg.append(p);
      shown++;
    }
    document.getElementById("edge-count").textContent = shown + " / " + data.edges.length + " edges";
  }

  function edgeTable(title, list, other) {
    const rows = list.slice().sort((a, b) => Math.abs(b.weight) - Math.abs(a.weight)).map(e => {
      const id = other(e);
      const link = id === "class" ? el("span", {text: name(id)}) : el("a", {text: name(id)});
      if (id !== "class") link.addEventListener("click", () => select(id));
      return el("tr", {}, el("td", {}, link), el("td", {class: "num", text: fmt(e.weight, 4)}));
    });
    return [el("h4", {text: title + " (" + list.length + ")"}),
      rows.length ? el("table", {}, el("tr", {}, el("th", {text: "group"}), el("th", {class: "num", text: "weight"})), ...rows)
                  : el("div", {class: "hint", text: "none"})];
  }

  function select(id) {
    selected = id;
    const g = byId.get(id);
    const related = new Set([...(up.get(id) || []).map(e => e.source), ...(down.get(id) || []).map(e => e.target)]);
    for (const [cid, card] of cards) {
      card.classList.toggle("selected", cid === id);
      card.classList.toggle("related", related.has(cid));
    }
    const d = document.getElementById("details");
    d.replaceChildren(
      el("h3", {text: g.layer + " group " + g.index}),
      el("div", {class: "hint", text: "id " + g.id}),
      el("table", {},
        el("tr", {}, el("td", {text: "influence on class"}), el("td", {class: "num", text: fmt(g.influence, 4)})),
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
      ...edgeTable("upstream groups", up.get(id) || [], e => e.source),
      ...edgeTable("downstream", down.get(id) || [], e => e.target));
    d.dataset.group = id;
    draw();
  }

  slider.addEventListener("input", draw);
  window.addEventListener("resize", draw);
  document.getElementById("group-count").textContent = data.groups.length + " groups";
  draw();
  window.neurflowView = {select, data};
})();
