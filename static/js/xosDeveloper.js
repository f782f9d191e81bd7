// The Developer dashboard: the caller's slices (xos.slicesPlus) with instance and site counts and
// the caller's role; a form to create a slice at the caller's site; links to each slice's admin
// page (opened in the whole window, not the dashboard's frame).
(function () {
  function esc(s) { return _.escape(s == null ? "" : String(s)); }
  function badge(status) {
    var cls = /^1 -/.test(status) ? "ok" : (/^0 -/.test(status) || !status ? "pending" : "error");
    return '<span class="badge ' + cls + '" title="' + esc(status) + '">' + esc(status) + '</span>';
  }
  function draw() {
    var rows = xos.slicesPlus.filter(function (s) { return s.get("current_user_can_see"); });
    var body = rows.map(function (s) {
      var info = s.get("sliceInfo") || {};
      return '<tr data-slice="' + esc(s.get("name")) + '"><th scope="row"><a target="_top" href="/admin/core/slice/' + s.id + '/">' +
        esc(s.get("name")) + '</a></th><td class="num">' + (info.instanceCount || 0) + '</td><td class="num">' +
        (info.siteCount || 0) + '</td><td>' + esc((info.roles || []).join(", ") || (s.get("creator") ? "creator" : "")) +
        '</td><td>' + badge(s.get("backend_status")) + '</td></tr>';
    }).join("");
    $("#developer-slices tbody").html(body);
    $("#developer-slices").prop("hidden", rows.length === 0);
    $("#developer-status").text(rows.length ? "" : "You have no slices yet.");
  }
  $(function () {
    xos.slicesPlus.on("sort change remove reset", draw);
    xos.slicesPlus.startPolling();
    xos.tenantview.fetch({ success: function () {
      var tv = xos.tenantview.at(0);
      if (tv && tv.get("current_user_login_base")) {
        $("#new-slice-name").attr("placeholder", tv.get("current_user_login_base") + "_myslice");
      }
    }});
    $("#new-slice").on("submit", function (ev) {
      ev.preventDefault();
      var tv = xos.tenantview.at(0);
      var slice = new xos.slicesPlus.model({
        name: $("#new-slice-name").val(),
        description: $("#new-slice-description").val(),
        site: tv ? tv.get("current_user_site_id") : null
      });
      slice.urlRoot = "/xoslib/slicesplus/";
      slice.save(null, {
        success: function () { $("#new-slice-error").text(""); $("#new-slice")[0].reset(); xos.slicesPlus.fetch(); },
        error: function (model, xhr) {
          var errors = {};
          try { errors = JSON.parse(xhr.responseText); } catch (e) {}
          var msg = _.map(errors, function (v, k) { return (k === "detail" || k === "non_field_errors" ? "" : k + ": ") + [].concat(v).join(" "); }).join(" ");
          $("#new-slice-error").text(msg || "The slice could not be created.");
        }
      });
    });
  });
})();
