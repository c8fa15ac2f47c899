/* The leads list's bulk bar, improved when scripts run (it works without them):
 * - only the fields the chosen action needs are shown (each field's data-actions);
 * - the heading's box selects every lead on the page, and only then is the offer to
 *   select every lead matching the filters shown.
 * Listeners sit on the document, so rows and bar swapped in by htmx keep working. */
(function () {
  "use strict";

  function showActionFields(form) {
    var select = form.querySelector("select[name=action]");
    var action = select ? select.value : "";
    form.querySelectorAll("[data-actions]").forEach(function (field) {
      var wanted = field.getAttribute("data-actions").split(" ").indexOf(action) !== -1;
      field.hidden = !wanted;
    });
  }

  function showSelectAll(form) {
    var page = document.querySelector("[data-select-page]");
    var offer = form.querySelector("[data-select-all]");
    if (!page || !offer) {
      return;
    }
    var box = offer.querySelector("input[name=select_all]");
    offer.hidden = !page.checked && !box.checked;
    if (!page.checked && box.checked) {
      page.checked = true;
    }
  }

  function prepare() {
    var form = document.getElementById("bulk-form");
    if (!form) {
      return;
    }
    var page = document.querySelector("[data-select-page]");
    if (page) {
      page.hidden = false;
    }
    showActionFields(form);
    showSelectAll(form);
  }

  document.addEventListener("change", function (event) {
    var target = event.target;
    var form = document.getElementById("bulk-form");
    if (!form) {
      return;
    }
    if (target.matches("#bulk-form select[name=action]")) {
      showActionFields(form);
    } else if (target.matches("[data-select-page]")) {
      document.querySelectorAll("input[name=lead][form=bulk-form]").forEach(function (box) {
        box.checked = target.checked;
      });
      if (!target.checked) {
        form.querySelector("input[name=select_all]").checked = false;
      }
      showSelectAll(form);
    } else if (target.matches("input[name=lead][form=bulk-form]") && !target.checked) {
      var pageBox = document.querySelector("[data-select-page]");
      if (pageBox) {
        pageBox.checked = false;
      }
      form.querySelector("input[name=select_all]").checked = false;
      showSelectAll(form);
    }
  });

  document.addEventListener("DOMContentLoaded", prepare);
  document.addEventListener("htmx:afterSwap", prepare);
})();
