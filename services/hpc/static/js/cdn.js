// The CDN dashboard: the server renders it from cdnContentProviders and cdnData; every five
// seconds the same view is fetched again and its section replaced, so health, request counts
// and hit ratios stay current while the page is open.
(function () {
  var url = location.pathname + "?embed=1";
  function refresh() {
    fetch(url, { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("cdn-view");
        var here = document.getElementById("cdn-view");
        if (fresh && here) { here.replaceWith(fresh); }
      })
      .catch(function () { /* keep what is shown; the next round tries again */ });
  }
  setInterval(refresh, 5000);
})();
