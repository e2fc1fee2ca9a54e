// A classic script in <head>: sets the saved theme before the first paint, so a dark-theme
// user never sees a white flash. Everything else waits for the modules.
(function () {
  try {
    var theme = localStorage.getItem("llamarada.theme");
    if (theme === "light" || theme === "dark") document.documentElement.dataset.theme = theme;
  } catch (error) {
    // Storage may be off (private mode); the system theme applies.
  }
})();
