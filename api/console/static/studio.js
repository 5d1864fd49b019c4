/* The rule studio's builder: a form generated from the stage's exported schema, kept in
 * step with the JSON view (the textarea the form submits). No build step, no framework.
 * Every field carries data-pointer, the JSON pointer the server's checks name, so that
 * each problem is shown on the field it is about. */
(function () {
  "use strict";

  var schemaNode = document.getElementById("studio-schema");
  if (!schemaNode) { return; }
  var schema = JSON.parse(schemaNode.textContent);
  var config = JSON.parse(document.getElementById("studio-config").textContent);
  var problems = JSON.parse(document.getElementById("studio-problems").textContent);
  var textarea = document.getElementById("document");
  var rulesRoot = document.getElementById("builder");
  var testsRoot = document.getElementById("tests-builder");
  var jsonError = document.getElementById("json-error");
  var editable = config.editable;

  var variables = {};
  schema.variables.forEach(function (v) { variables[v.name] = v; });
  var actions = {};
  schema.actions.forEach(function (a) { actions[a.name] = a; });
  var operatorsOf = schema.variable_type_operators;

  var doc;
  try { doc = JSON.parse(textarea.value); } catch (e) { doc = null; }

  /* ---------- small DOM helpers ---------- */
  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (key) {
      var value = attrs[key];
      if (value === undefined || value === null || value === false) { return; }
      if (key === "text") { node.textContent = value; }
      else if (key.slice(0, 2) === "on") { node.addEventListener(key.slice(2), value); }
      else { node.setAttribute(key, value === true ? "" : value); }
    });
    (children || []).forEach(function (child) {
      if (child) { node.appendChild(typeof child === "string" ? document.createTextNode(child) : child); }
    });
    return node;
  }
  function append(parent, child) { if (child) { parent.appendChild(child); } }
  var ids = 0;
  function uid() { ids += 1; return "f" + ids; }
  function labelled(text, control, extraClass) {
    if (!control.id) { control.id = uid(); }
    return el("span", {"class": "field " + (extraClass || "")},
              [el("label", {"for": control.id, text: text}), control]);
  }
  function button(text, title, handler, extraClass) {
    if (!editable) { return null; }
    return el("button", {type: "button", "class": "small " + (extraClass || ""), title: title,
                         "aria-label": title, disabled: !editable || !handler, onclick: handler, text: text});
  }
  function select(pointer, options, current, onchange) {
    var node = el("select", {"data-pointer": pointer, disabled: !editable});
    var found = false;
    options.forEach(function (option) {
      var o = el("option", {value: option[0], text: option[1]});
      if (option[0] === current) { o.selected = true; found = true; }
      node.appendChild(o);
    });
    if (!found && current !== undefined && current !== null) {
      var unknown = el("option", {value: current, text: String(current) + " (unknown)"});
      unknown.selected = true;
      node.insertBefore(unknown, node.firstChild);
    }
    node.addEventListener("change", function () { onchange(node.value); });
    return node;
  }
  function input(pointer, value, onchange, attrs) {
    var node = el("input", Object.assign({"data-pointer": pointer, value: value === null || value === undefined ? "" : String(value),
                                          readonly: !editable}, attrs || {}));
    node.addEventListener("change", function () { onchange(node.value); });
    return node;
  }
  function number(text) {
    var trimmed = String(text).trim();
    if (trimmed !== "" && /^-?[0-9]+(\.[0-9]+)?$/.test(trimmed)) { return Number(trimmed); }
    return trimmed;  // sent as written: the server says why it is not a number, on this field
  }
  function list(text) {
    return String(text).split(",").map(function (s) { return s.trim(); }).filter(function (s) { return s !== ""; });
  }

  /* ---------- keeping the JSON view in step ---------- */
  function changed(rerender) {
    textarea.value = JSON.stringify(doc, null, 2);
    jsonError.hidden = true;
    if (rerender) { render(); }
  }
  var pending = null;  // typing in the JSON view: the builder follows once typing pauses
  function syncFromJson() {
    if (pending === null) { return; }
    clearTimeout(pending);
    pending = null;
    try {
      doc = JSON.parse(textarea.value);
      jsonError.hidden = true;
      render();
    } catch (e) {
      jsonError.textContent = "Not valid JSON yet: " + e.message + " (the builder shows the last valid version)";
      jsonError.hidden = false;
    }
  }
  textarea.addEventListener("input", function () {
    if (pending !== null) { clearTimeout(pending); }
    pending = setTimeout(function () { pending = -1; syncFromJson(); }, 400);
  });

  /* ---------- conditions ---------- */
  function defaultLeaf() {
    var first = schema.variables[0];
    var op = operatorsOf[first.field_type][0];
    return {name: first.name, operator: op.name, value: defaultValue(op.input_type, first)};
  }
  function defaultValue(inputType, variable) {
    if (inputType === "none") { return null; }
    if (inputType === "numeric") { return 0; }
    if (inputType === "numeric_range") { return [0, 1]; }
    if (inputType === "text_list" || inputType === "select_multiple") {
      return variable.options && variable.options.length ? [variable.options[0]] : ["value"];
    }
    if (inputType === "variable") {
      var same = schema.variables.filter(function (v) { return v.field_type === variable.field_type && v.name !== variable.name; });
      return same.length ? same[0].name : "";
    }
    if (inputType === "text" && variable.options && variable.options.length) { return variable.options[0]; }
    return "";
  }
  function operatorOf(variable, name) {
    var found = null;
    (operatorsOf[variable.field_type] || []).forEach(function (op) { if (op.name === name) { found = op; } });
    return found;
  }

  function valueEditor(node, pointer, variable, op) {
    var p = pointer + "/value";
    var type = op ? op.input_type : "text";
    var options = variable.options || [];
    if (type === "none") { return el("span", {"class": "muted", text: "(no value)"}); }
    if (type === "numeric") {
      return labelled("Value", input(p, node.value, function (v) { node.value = number(v); changed(false); },
                                     {inputmode: "decimal", "class": "num"}), "value");
    }
    if (type === "numeric_range") {
      var bounds = Array.isArray(node.value) ? node.value : [node.value, node.value];
      return el("span", {"class": "field value"}, [
        labelled("From", input(p, bounds[0], function (v) { node.value = [number(v), bounds[1]]; bounds = node.value; changed(false); }, {inputmode: "decimal", "class": "num"})),
        labelled("to", input(p, bounds[1], function (v) { node.value = [bounds[0], number(v)]; bounds = node.value; changed(false); }, {inputmode: "decimal", "class": "num"}))]);
    }
    if (type === "variable") {
      var same = schema.variables.filter(function (v) { return v.field_type === variable.field_type && v.name !== variable.name; })
        .map(function (v) { return [v.name, v.label]; });
      return labelled("Other variable", select(p, same, node.value, function (v) { node.value = v; changed(false); }), "value");
    }
    if (type === "text_list" || type === "select_multiple") {
      if (options.length) {
        var chosen = Array.isArray(node.value) ? node.value : [];
        var legend = op.name === "is_not_in" ? "None of" : op.name === "contains_all" ? "All of" : "Any of";
        var box = el("fieldset", {"class": "choices", "data-pointer": p}, [el("legend", {text: legend})]);
        options.forEach(function (option) {
          var check = el("input", {type: "checkbox", value: option, disabled: !editable});
          check.checked = chosen.indexOf(option) >= 0;
          check.addEventListener("change", function () {
            node.value = options.filter(function (o) {
              return o === option ? check.checked : (node.value || []).indexOf(o) >= 0;
            });
            changed(false);
          });
          check.id = uid();
          box.appendChild(el("span", {"class": "choice"}, [check, el("label", {"for": check.id, text: option})]));
        });
        return box;
      }
      return labelled("Values (comma-separated)", input(p, (node.value || []).join(", "), function (v) { node.value = list(v); changed(false); }), "value wide");
    }
    if (options.length && (op.name === "equal_to" || op.name === "not_equal_to")) {
      return labelled("Value", select(p, options.map(function (o) { return [o, o]; }), node.value,
                                      function (v) { node.value = v; changed(false); }), "value");
    }
    return labelled("Value", input(p, node.value, function (v) { node.value = v; changed(false); }), "value wide");
  }

  function leafEditor(node, pointer, remove) {
    var variable = variables[node.name] || {name: node.name, label: node.name, field_type: "string", options: []};
    var op = operatorOf(variable, node.operator);
    var variableSelect = select(pointer + "/name", schema.variables.map(function (v) { return [v.name, v.label]; }), node.name, function (name) {
      var next = variables[name];
      node.name = name;
      var keep = operatorOf(next, node.operator);
      if (!keep) { keep = operatorsOf[next.field_type][0]; node.operator = keep.name; node.value = defaultValue(keep.input_type, next); }
      changed(true);
    });
    var operatorSelect = select(pointer + "/operator", (operatorsOf[variable.field_type] || []).map(function (o) { return [o.name, o.label.toLowerCase()]; }), node.operator, function (name) {
      var before = op ? op.input_type : null;
      node.operator = name;
      var now = operatorOf(variable, name);
      if (now && now.input_type !== before) { node.value = defaultValue(now.input_type, variable); }
      changed(true);
    });
    return el("div", {"class": "leaf", "data-pointer": pointer}, [
      labelled("Variable", variableSelect, "variable"),
      labelled("Operator", operatorSelect, "operator"),
      valueEditor(node, pointer, variable, op),
      remove ? button("✕", "Remove this condition", remove, "remove") : null
    ]);
  }

  function groupEditor(node, pointer, remove, depth) {
    var kind = node.all ? "all" : "any";
    var members = node[kind];
    var box = el("div", {"class": "group depth-" + Math.min(depth, 3), "data-pointer": pointer});
    var head = el("div", {"class": "group-head"}, [
      labelled("Match", select(pointer, [["all", "all of these"], ["any", "any of these"]], kind, function (v) {
        if (v !== kind) { node[v] = members; delete node[kind]; changed(true); }
      }), "match"),
      button("+ condition", "Add a condition to this group", function () { members.push(defaultLeaf()); changed(true); }),
      button("+ group", "Add a nested group", function () { members.push({any: [defaultLeaf()]}); changed(true); }),
      remove ? button("✕", "Remove this group", remove, "remove") : null
    ]);
    box.appendChild(head);
    var body = el("div", {"class": "members"});
    members.forEach(function (member, index) {
      var removeMember = members.length > 1 ? function () { members.splice(index, 1); changed(true); } : null;
      body.appendChild(conditionEditor(member, pointer + "/" + kind + "/" + index, removeMember, depth + 1));
    });
    box.appendChild(body);
    return box;
  }

  function conditionEditor(node, pointer, remove, depth) {
    return (node && (node.all || node.any)) ? groupEditor(node, pointer, remove, depth) : leafEditor(node, pointer, remove);
  }

  /* ---------- actions ---------- */
  function actionEditor(action, pointer, remove) {
    var known = actions[action.name];
    var params = action.params || (action.params = {});
    var row = el("div", {"class": "action", "data-pointer": pointer}, [
      labelled("Action", select(pointer + "/name", schema.actions.map(function (a) { return [a.name, a.label]; }), action.name, function (name) {
        action.name = name;
        var next = {};
        (actions[name].params || []).forEach(function (p) { next[p.name] = params[p.name] !== undefined ? params[p.name] : (p.fieldType === "numeric" ? 0 : ""); });
        action.params = next;
        changed(true);
      }), "action-name")
    ]);
    ((known && known.params) || []).forEach(function (param) {
      var p = pointer + "/params/" + param.name;
      var control;
      if (param.fieldType === "numeric") {
        control = input(p, params[param.name], function (v) { params[param.name] = number(v); changed(false); }, {inputmode: "decimal", "class": "num"});
      } else if (param.fieldType === "select" && param.options) {
        control = select(p, param.options.map(function (o) { return [o, o]; }), params[param.name], function (v) { params[param.name] = v; changed(false); });
      } else {
        control = input(p, params[param.name], function (v) { params[param.name] = v; changed(false); });
      }
      row.appendChild(labelled(param.label || param.name, control, param.name === "message" || param.name === "reason" ? "wide" : ""));
    });
    if (remove) { append(row, button("✕", "Remove this action", remove, "remove")); }
    return row;
  }

  /* ---------- rules ---------- */
  function move(list_, from, to) {
    var item = list_.splice(from, 1)[0];
    list_.splice(to, 0, item);
  }
  function copyName(name) {
    var taken = {};
    doc.rules.forEach(function (r) { taken[r.name] = true; });
    var n = 2;
    while (taken[name + "-" + n]) { n += 1; }
    return name + "-" + n;
  }

  function ruleEditor(rule, index) {
    var pointer = "/rules/" + index;
    var rules = doc.rules;
    var card = el("section", {"class": "rule" + (rule.disabled ? " disabled" : ""), "data-pointer": pointer,
                              draggable: editable ? "true" : null, "data-index": index});
    var disabled = el("input", {type: "checkbox", "data-pointer": pointer + "/disabled", disabled: !editable});
    disabled.checked = !rule.disabled;
    disabled.addEventListener("change", function () {
      if (disabled.checked) { delete rule.disabled; } else { rule.disabled = true; }
      changed(true);
    });
    var head = el("header", {"class": "rule-head"}, [
      el("span", {"class": "position", title: "Position: " + (config.first_match ? "the first rule that holds decides" : "every rule that holds acts"), text: String(index + 1)}),
      labelled("Rule name", input(pointer + "/name", rule.name, function (v) { rule.name = v; changed(false); }), "name"),
      labelled("Description", input(pointer + "/description", rule.description || "", function (v) {
        if (v) { rule.description = v; } else { delete rule.description; }
        changed(false);
      }), "description"),
      labelled("On", disabled, "enabled"),
      el("span", {"class": "tools"}, [
        button("↑", "Move rule " + (index + 1) + " up", index > 0 ? function () { move(rules, index, index - 1); changed(true); } : null),
        button("↓", "Move rule " + (index + 1) + " down", index < rules.length - 1 ? function () { move(rules, index, index + 1); changed(true); } : null),
        button("Duplicate", "Duplicate rule " + (index + 1), function () {
          var twin = JSON.parse(JSON.stringify(rule));
          twin.name = copyName(rule.name);
          rules.splice(index + 1, 0, twin);
          changed(true);
        }),
        button("Delete", "Delete rule " + (index + 1), rules.length > 1 ? function () { rules.splice(index, 1); changed(true); } : null, "remove")
      ])
    ]);
    card.appendChild(head);
    var conditions = el("div", {"class": "conditions", "data-pointer": pointer + "/conditions"});
    if (rule.conditions && (rule.conditions.all || rule.conditions.any)) {
      conditions.appendChild(groupEditor(rule.conditions, pointer + "/conditions", null, 0));
    } else {
      conditions.appendChild(leafEditor(rule.conditions || defaultLeaf(), pointer + "/conditions", null));
      append(conditions, button("+ condition", "Add a condition (all must hold)", function () {
        rule.conditions = {all: [rule.conditions, defaultLeaf()]};
        changed(true);
      }));
    }
    card.appendChild(el("div", {"class": "clause"}, [el("h4", {text: "When"}), conditions]));
    var acts = el("div", {"class": "actions", "data-pointer": pointer + "/actions"});
    (rule.actions || []).forEach(function (action, i) {
      acts.appendChild(actionEditor(action, pointer + "/actions/" + i,
        rule.actions.length > 1 ? function () { rule.actions.splice(i, 1); changed(true); } : null));
    });
    append(acts, button("+ action", "Add an action", function () {
      var first = schema.actions[0];
      var params = {};
      (first.params || []).forEach(function (p) { params[p.name] = p.fieldType === "numeric" ? 0 : ""; });
      rule.actions.push({name: first.name, params: params});
      changed(true);
    }));
    card.appendChild(el("div", {"class": "clause"}, [el("h4", {text: "Then"}), acts]));
    if (editable) { dragging(card, index); }
    return card;
  }

  var dragFrom = null;
  function dragging(card, index) {
    card.addEventListener("dragstart", function (event) {
      if (event.target !== card) { return; }
      dragFrom = index;
      event.dataTransfer.effectAllowed = "move";
      card.classList.add("dragging");
    });
    card.addEventListener("dragend", function () { card.classList.remove("dragging"); });
    card.addEventListener("dragover", function (event) { if (dragFrom !== null) { event.preventDefault(); card.classList.add("drop"); } });
    card.addEventListener("dragleave", function () { card.classList.remove("drop"); });
    card.addEventListener("drop", function (event) {
      event.preventDefault();
      if (dragFrom !== null && dragFrom !== index) { move(doc.rules, dragFrom, index); dragFrom = null; changed(true); }
      dragFrom = null;
    });
  }

  /* ---------- test cases ---------- */
  function factValue(variable, value) {
    if (!variable) { return value; }
    if (variable.field_type === "boolean") { return value === "true"; }
    if (variable.field_type === "numeric") { return number(value); }
    if (variable.field_type === "select_multiple") { return list(value); }
    return value;
  }
  function factEditor(facts, name, pointer, remove) {
    var variable = variables[name];
    var p = pointer + "/" + name;
    var value = facts[name];
    var control;
    if (variable && variable.field_type === "boolean") {
      control = select(p, [["true", "yes"], ["false", "no"]], String(value), function (v) { facts[name] = v === "true"; changed(false); });
    } else if (variable && variable.options && variable.options.length && variable.field_type === "string") {
      control = select(p, variable.options.map(function (o) { return [o, o]; }), value, function (v) { facts[name] = v; changed(false); });
    } else {
      control = input(p, Array.isArray(value) ? value.join(", ") : value, function (v) { facts[name] = factValue(variable, v); changed(false); },
                      variable && variable.field_type === "numeric" ? {inputmode: "decimal", "class": "num"} : {});
    }
    return el("div", {"class": "fact", "data-pointer": p}, [
      el("span", {"class": "fact-name", text: variable ? variable.label : name}), control,
      button("✕", "Remove " + name, remove, "remove")]);
  }

  function testEditor(test, index) {
    var pointer = "/tests/" + index;
    var facts = test.facts || (test.facts = {});
    var expect = test.expect || (test.expect = {});
    var card = el("section", {"class": "test", "data-pointer": pointer}, [
      el("header", {"class": "rule-head"}, [
        labelled("Test case", input(pointer + "/name", test.name, function (v) { test.name = v; changed(false); }), "name wide"),
        el("span", {"class": "tools"}, [button("Delete", "Delete test case " + (index + 1), function () { doc.tests.splice(index, 1); changed(true); }, "remove")])
      ])
    ]);
    var given = el("div", {"class": "facts", "data-pointer": pointer + "/facts"}, [el("h4", {text: "Given (the rest as an ordinary order)"})]);
    Object.keys(facts).forEach(function (name) {
      given.appendChild(factEditor(facts, name, pointer + "/facts", function () { delete facts[name]; changed(true); }));
    });
    var unused = schema.variables.filter(function (v) { return !(v.name in facts); });
    if (editable && unused.length) {
      var adder = select(null, [["", "+ fact…"]].concat(unused.map(function (v) { return [v.name, v.label]; })), "", function (name) {
        if (!name) { return; }
        var v = variables[name];
        facts[name] = v.field_type === "boolean" ? true : v.field_type === "numeric" ? 0 :
          v.field_type === "select_multiple" ? [] : (v.options && v.options.length ? v.options[0] : "");
        changed(true);
      });
      adder.removeAttribute("data-pointer");
      given.appendChild(labelled("Add a fact", adder, "adder"));
    }
    card.appendChild(given);
    var then = el("div", {"class": "expect", "data-pointer": pointer + "/expect"}, [el("h4", {text: "Expect"})]);
    Object.keys(config.decision_keys).forEach(function (key) {
      var kind = config.decision_keys[key];
      var has = key in expect;
      var p = pointer + "/expect/" + key;
      var value = has ? (kind === "list" ? expect[key].join(", ") : expect[key]) : "";
      then.appendChild(labelled(key.replace(/_/g, " ") + (kind === "list" ? " (comma-separated; empty = none)" : ""),
        input(p, value, function (v) {
          if (v.trim() === "" && kind !== "list") { delete expect[key]; }
          else { expect[key] = kind === "list" ? list(v) : v.trim(); }
          changed(false);
        }, {placeholder: has ? "" : "not checked"}), "wide"));
    });
    card.appendChild(then);
    return card;
  }

  /* ---------- rendering and problems on fields ---------- */
  function render() {
    rulesRoot.textContent = "";
    testsRoot.textContent = "";
    if (!doc || !Array.isArray(doc.rules)) {
      rulesRoot.appendChild(el("p", {"class": "field-error", text: "The JSON view does not hold a rule set with a list of rules; edit it there."}));
      return;
    }
    doc.rules.forEach(function (rule, index) { rulesRoot.appendChild(ruleEditor(rule, index)); });
    if (editable) {
      append(rulesRoot, button("+ rule", "Add a rule at the end", function () {
        var first = schema.actions[0];
        var params = {};
        (first.params || []).forEach(function (p) { params[p.name] = p.fieldType === "numeric" ? 0 : ""; });
        doc.rules.push({name: copyName("new-rule"), conditions: defaultLeaf(), actions: [{name: first.name, params: params}]});
        changed(true);
      }, "add-rule"));
    }
    var tests = doc.tests || [];
    testsRoot.appendChild(el("p", {"class": "muted", text: "Each test case runs on every save; a version whose tests fail is never published."}));
    tests.forEach(function (test, index) { testsRoot.appendChild(testEditor(test, index)); });
    if (editable) {
      append(testsRoot, button("+ test case", "Add a test case", function () {
        doc.tests = doc.tests || [];
        doc.tests.push({name: "new test case " + (doc.tests.length + 1), facts: {}, expect: {}});
        changed(true);
      }, "add-rule"));
    }
    showProblems(problems);
  }

  function fieldFor(pointer) {
    var path = pointer;
    while (true) {
      var found = document.querySelector('[data-pointer="' + path.replace(/"/g, '\\"') + '"]');
      if (found || path === "") { return found; }
      path = path.slice(0, path.lastIndexOf("/"));
    }
  }

  function showProblems(found) {
    document.querySelectorAll(".problem-note").forEach(function (n) { n.remove(); });
    document.querySelectorAll(".has-error, .has-warning").forEach(function (n) {
      n.classList.remove("has-error", "has-warning");
      n.removeAttribute("aria-invalid");
    });
    found.forEach(function (problem) {
      var field = fieldFor(problem.pointer);
      if (!field) { return; }
      var warning = problem.kind === "warning";
      field.classList.add(warning ? "has-warning" : "has-error");
      if (!warning) { field.setAttribute("aria-invalid", "true"); }
      var note = el("p", {"class": "problem-note " + (warning ? "warn" : "field-error"), role: warning ? null : "alert",
                          text: (problem.kind === "test" ? "Test: " : warning ? "⚠ " : "") + problem.message});
      note.id = uid();
      field.setAttribute("aria-describedby", note.id);
      if (field.matches("section.rule, section.test")) {
        field.querySelector("header").insertAdjacentElement("afterend", note);
      } else {
        var row = field.closest(".leaf, .action, .fact, .group-head, .rule-head");
        if (row && row !== field) { row.appendChild(note); }
        else if (field.matches("div, fieldset")) { field.appendChild(note); }
        else { (field.closest(".field") || field).insertAdjacentElement("afterend", note); }
      }
      var panel = field.closest("[data-panel]");
      if (panel && !warning) { panel.setAttribute("data-has-problem", "true"); }
    });
    var first = document.querySelector("[aria-invalid=true]");
    if (first) {
      var panel = first.closest("[data-panel]");
      if (panel) { showTab(panel.getAttribute("data-panel")); }
    }
  }

  /* the summary's links go to the field each problem is about */
  document.querySelectorAll("[data-goto]").forEach(function (link) {
    link.addEventListener("click", function (event) {
      event.preventDefault();
      var field = fieldFor(link.getAttribute("data-goto"));
      if (!field) { return; }
      var panel = field.closest("[data-panel]");
      if (panel) { showTab(panel.getAttribute("data-panel")); }
      field.scrollIntoView({block: "center"});
      (field.matches("input, select, textarea") ? field : (field.querySelector("input, select") || field)).focus();
    });
  });

  /* ---------- tabs ---------- */
  var tabs = Array.prototype.slice.call(document.querySelectorAll("[data-tab]"));
  function showTab(name) {
    syncFromJson();
    tabs.forEach(function (tab) { tab.setAttribute("aria-selected", tab.getAttribute("data-tab") === name ? "true" : "false"); });
    document.querySelectorAll("[data-panel]").forEach(function (panel) { panel.hidden = panel.getAttribute("data-panel") !== name; });
    var savebar = document.querySelector(".savebar");
    if (savebar) { savebar.hidden = name === "try"; }
  }
  tabs.forEach(function (tab, index) {
    tab.addEventListener("click", function () { showTab(tab.getAttribute("data-tab")); });
    tab.addEventListener("keydown", function (event) {
      var step = event.key === "ArrowRight" ? 1 : event.key === "ArrowLeft" ? -1 : 0;
      if (step) { var next = tabs[(index + step + tabs.length) % tabs.length]; next.focus(); next.click(); }
    });
  });
  showTab("rules");

  /* a refused dry run, simulation or test run (422) carries the reasons: show them */
  document.body.addEventListener("htmx:beforeSwap", function (event) {
    if (event.detail.xhr.status === 422) { event.detail.shouldSwap = true; event.detail.isError = false; }
  });

  /* the test run answers with its own problems: show them on the fields too */
  document.body.addEventListener("htmx:afterSwap", function (event) {
    var data = event.target.querySelector && event.target.querySelector("script.studio-problems");
    if (data) {
      problems = JSON.parse(data.textContent);
      showProblems(problems);
      showTab("rules");
      var firstBad = document.querySelector("[aria-invalid=true]");
      if (firstBad) { var panel = firstBad.closest("[data-panel]"); if (panel) { showTab(panel.getAttribute("data-panel")); } }
    }
  });

  if (doc) { textarea.value = JSON.stringify(doc, null, 2); }
  render();
}());
