// crmkit desk: optional enhancements. Every page works without this file (and without
// htmx.min.js, which boosts a few forms and links: see templates/base.html).
"use strict";
document.addEventListener("submit", (event) => {
  const question = event.target.getAttribute && event.target.getAttribute("data-confirm");
  if (question && !window.confirm(question)) event.preventDefault();
});
// Pipeline board: drag a deal onto another stage to move it (the same form as the button).
document.addEventListener("dragstart", (event) => {
  const deal = event.target.closest && event.target.closest("[data-deal]");
  if (deal) event.dataTransfer.setData("text/plain", deal.id);
});
for (const kind of ["dragover", "dragleave", "drop"]) {
  document.addEventListener(kind, (event) => {
    const stage = event.target.closest && event.target.closest("[data-stage]");
    if (!stage) return;
    event.preventDefault();
    stage.classList.toggle("over", kind === "dragover");
    if (kind !== "drop") return;
    const deal = document.getElementById(event.dataTransfer.getData("text/plain"));
    const form = deal && deal.querySelector("form.move");
    if (!form) return;
    form.querySelector("select").value = stage.getAttribute("data-stage");
    // requestSubmit fires the submit event, so htmx (when loaded) sends it in place
    if (form.requestSubmit) form.requestSubmit(); else form.submit();
  });
}
