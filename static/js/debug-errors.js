// DEBUG only: an htmx request that ends in a server error (500) shows Django's error
// page instead of doing nothing. Form errors (400) and refusals (403, 404) are the
// app's own answers and are handled by the htmx-config of base.html.
document.addEventListener("htmx:beforeOnLoad", function (event) {
  var xhr = event.detail.xhr;
  if (xhr.status < 500) {
    return;
  }
  event.stopPropagation();
  document.documentElement.innerHTML = xhr.response;
  for (var script of document.scripts) {
    (0, eval)(script.innerText);
  }
  if (typeof window.onload === "function") {
    window.onload();
  }
});
