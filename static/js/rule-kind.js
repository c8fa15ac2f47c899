// A rule's form shows the fields of the rule's kind: choosing "fit" or "engagement"
// shows that kind's fieldset and hides the other's. Without this script the page still
// works: the rule's page folds the other kind's fields away, the new model's rule forms
// show both.
(function () {
  "use strict";
  var KIND = 'select[name$="kind"]';

  function container(select) {
    return select.closest(".inline-related") || select.form;
  }

  function show(select) {
    var box = container(select);
    if (!box) { return; }
    box.querySelectorAll("fieldset.rule-kind").forEach(function (fieldset) {
      var mine = fieldset.classList.contains("rule-kind-" + select.value);
      fieldset.hidden = !mine;
      var folded = fieldset.querySelector("details");
      if (mine && folded) { folded.open = true; }
    });
  }

  function showAll(root) {
    root.querySelectorAll(KIND).forEach(show);
  }

  document.addEventListener("change", function (event) {
    if (event.target.matches && event.target.matches(KIND)) { show(event.target); }
  });
  // A rule form added on a new model's page.
  document.addEventListener("formset:added", function (event) { showAll(event.target); });
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { showAll(document); });
  } else {
    showAll(document);
  }
})();
