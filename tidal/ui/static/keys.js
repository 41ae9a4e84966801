// Keyboard shortcuts, written here and served by Tidal: a key clicks the button whose
// data-key it is, unless the focus is in a text field (typing a note types).
document.addEventListener("keydown", (event) => {
  const target = event.target;
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  if (target instanceof HTMLInputElement && target.type !== "checkbox") return;
  if (target instanceof HTMLTextAreaElement || target instanceof HTMLSelectElement) return;
  const button = document.querySelector(`[data-key="${CSS.escape(event.key)}"]`);
  if (button) {
    event.preventDefault();
    button.click();
  }
});
