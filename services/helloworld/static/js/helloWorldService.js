// The HelloWorld service dashboard: one row per tenant with an editable message, the loopback
// address its server answers at (once the synchronizer started it) and its backend status.
(function () {
  function esc(s) { return _.escape(s == null ? "" : String(s)); }
  function badge(status) {
    var cls = /^1 -/.test(status) ? "ok" : (/^0 -/.test(status) || !status ? "pending" : "error");
    return '<span class="badge ' + cls + '" title="' + esc(status) + '">' + esc(status) + '</span>';
  }
  var tenants = xos.byModel.HelloWorldTenant;
  function draw() {
    var body = tenants.map(function (t) {
      var port = t.get("port");
      var url = port ? "http://127.0.0.1:" + port + "/" : "";
      return '<tr data-tenant="' + esc(t.get("name")) + '"><th scope="row">' + esc(t.get("name")) + '</th>' +
        '<td><form class="inline-edit hello-message" data-id="' + t.id + '">' +
        '<label class="visually-hidden" for="hello-msg-' + t.id + '">Message of ' + esc(t.get("name")) + '</label>' +
        '<input type="text" id="hello-msg-' + t.id + '" maxlength="254" value="' + esc(t.get("display_message")) + '">' +
        '<button type="submit">Save</button></form></td>' +
        '<td>' + (url ? '<a href="' + esc(url) + '" target="_blank" rel="noopener">' + esc(url) + '</a>' : '<span class="muted">not yet</span>') + '</td>' +
        '<td>' + badge(t.get("backend_status")) + '</td></tr>';
    }).join("");
    $("#hello-tenants tbody").html(body);
    $("#hello-tenants").prop("hidden", tenants.length === 0);
    $("#hello-status").text(tenants.length ? "" : "The service has no tenants yet.");
  }
  $(function () {
    tenants.on("sort change remove reset", draw);
    tenants.startPolling();
    $("#hello-tenants").on("submit", "form.hello-message", function (ev) {
      ev.preventDefault();
      var t = tenants.get($(this).data("id"));
      var message = $(this).find("input").val();
      t.save({ display_message: message }, {
        patch: true,
        success: function () { $("#hello-error").text(""); },
        error: function (model, xhr) {
          var errors = {};
          try { errors = JSON.parse(xhr.responseText); } catch (e) {}
          $("#hello-error").text(_.flatten(_.values(errors)).join(" ") || "The message could not be saved.");
        }
      });
    });
  });
})();
