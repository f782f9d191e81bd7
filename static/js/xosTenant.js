// The Tenant dashboard (XOS's xosTenant): the caller's slices (xos.slicesPlus); create one at the
// caller's site; for the chosen slice, the number of instances at each site (`site_allocation`)
// and its users (`users`) with each one's slice role (`user_roles`), saved in one SlicePlus
// write; its instances with their state and address (xos.instances, live through /xos/events);
// its ssh commands, listed and downloadable; delete it. Everything a user typed is escaped
// before it reaches the page.
(function () {
  var selected = null;
  var sshUrl = null;
  // The slice roles a member may be given (`/xos/slice_roles/`, readable by every user).
  var sliceRoles = ["access", "admin"];

  function esc(s) { return _.escape(s == null ? "" : String(s)); }
  function badge(status) {
    var cls = /^1 -/.test(status) ? "ok" : (/^0 -/.test(status) || !status ? "pending" : "error");
    return '<span class="badge ' + cls + '" title="' + esc(status) + '">' + esc(status || "0 - pending") + '</span>';
  }
  // SlicePlus sends some values JSON-encoded, as XOS's serializer did.
  function decoded(v) {
    if (typeof v !== "string") return v;
    try { return JSON.parse(v); } catch (e) { return v; }
  }
  function view() { return xos.tenantview.at(0); }
  function errorText(xhr, fallback) {
    var errors = {};
    try { errors = JSON.parse(xhr.responseText); } catch (e) {}
    var msg = _.map(errors, function (v, k) {
      return (k === "detail" || k === "non_field_errors" ? "" : k + ": ") + [].concat(v).join(" ");
    }).join(" ");
    return msg || fallback;
  }
  function mine() {
    return xos.slicesPlus.filter(function (s) { return s.get("current_user_can_see"); });
  }

  function drawList() {
    var rows = mine();
    $("#tenant-slices tbody").html(rows.map(function (s) {
      var info = s.get("sliceInfo") || {};
      return '<tr data-slice="' + esc(s.get("name")) + '"><th scope="row"><button type="button" class="link" data-id="' +
        esc(s.id) + '" aria-pressed="' + (s.id === selected) + '">' + esc(s.get("name")) + '</button></th><td class="num">' +
        (info.instanceCount || 0) + '</td><td class="num">' + (info.siteCount || 0) + '</td><td>' +
        badge(s.get("backend_status")) + '</td></tr>';
    }).join(""));
    $("#tenant-slices").prop("hidden", rows.length === 0);
    $("#tenant-status").text(rows.length ? "" : "You have no slices yet.");
    if (selected !== null && !xos.slicesPlus.get(selected)) {
      selected = null;
      $("#tenant-slice").prop("hidden", true);
    }
    drawSlice(false);
  }

  // The editable part (counts, users) is drawn when a slice is chosen or saved, not on every
  // update: a poll must not undo what the user is typing.
  function drawForm(s) {
    var tv = view();
    var alloc = decoded(s.get("site_allocation")) || {};
    var sites = (tv && tv.get("blessed_site_names")) || [];
    $("#tenant-sites").html(sites.map(function (name, i) {
      return '<div class="tenant-field"><label for="tenant-alloc-' + i + '">' + esc(name) + '</label>' +
        '<input type="number" min="0" max="100" inputmode="numeric" id="tenant-alloc-' + i + '" data-site="' +
        esc(name) + '" value="' + esc(alloc[name] || 0) + '"></div>';
    }).join("") || '<p class="muted">No site offers instances to you.</p>');
    var members = (decoded(s.get("users")) || []).map(String);
    var roles = decoded(s.get("user_roles")) || {};
    var ids = (tv && tv.get("current_user_site_users")) || [];
    var names = (tv && tv.get("current_user_site_user_names")) || [];
    $("#tenant-users").html(ids.map(function (id, i) {
      var name = names[i] || ("#" + id);
      var current = roles[String(id)] || "access";
      var member = members.indexOf(String(id)) >= 0;
      return '<div class="tenant-field tenant-user"><input type="checkbox" id="tenant-user-' + i + '" data-user="' + esc(id) + '"' +
        (member ? " checked" : "") + '><label for="tenant-user-' + i + '">' + esc(name) + '</label>' +
        '<select data-role-for="' + esc(id) + '" data-current="' + esc(member ? current : "") + '" aria-label="' +
        esc("Slice role of " + name) + '">' + sliceRoles.map(function (r) {
          return '<option value="' + esc(r) + '"' + (r === current ? " selected" : "") + '>' + esc(r) + '</option>';
        }).join("") + '</select></div>';
    }).join("") || '<p class="muted">Your site has no users you may add.</p>');
  }

  function sliceOf(instance) {
    var v = instance.get("slice");
    if (typeof v === "string") { var m = v.match(/(\d+)\/?$/); return m ? Number(m[1]) : null; }
    return v;
  }

  function drawSlice(resetForm) {
    var s = selected !== null && xos.slicesPlus.get(selected);
    if (!s) return;
    $("#tenant-slice").prop("hidden", false);
    $("#tenant-slice-title").text(s.get("name"));
    $("#tenant-slice-status").html(badge(s.get("backend_status")));
    if (resetForm) drawForm(s);
    var instances = xos.instances.filter(function (i) { return sliceOf(i) === s.id; });
    $("#tenant-instances tbody").html(instances.map(function (i) {
      return '<tr data-instance="' + esc(i.id) + '"><th scope="row">' + esc(i.get("instance_name") || i.get("name")) +
        '</th><td>' + esc(i.get("name")) + '</td><td class="address">' + esc(i.get("ip") || "—") + '</td><td>' +
        badge(i.get("backend_status")) + '</td></tr>';
    }).join("") || '<tr><td colspan="4" class="muted">No instances yet: choose how many to run at each site.</td></tr>');
    var commands = ((s.get("sliceInfo") || {}).sshCommands) || [];
    $("#tenant-ssh").html(commands.map(function (c) { return "<li><code>" + esc(c) + "</code></li>"; }).join("") ||
      '<li class="muted">None yet: an instance gets its command once it runs.</li>');
    if (sshUrl) URL.revokeObjectURL(sshUrl);
    sshUrl = URL.createObjectURL(new Blob([commands.join("\n") + (commands.length ? "\n" : "")], { type: "text/plain" }));
    $("#tenant-ssh-download").attr("href", sshUrl).attr("download", s.get("name") + "-ssh-commands.txt");
  }

  function choose(id) {
    selected = id;
    $("#tenant-edit-error, #tenant-edit-ok").text("");
    $("#tenant-delete-confirm").prop("hidden", true);
    drawList();
    drawSlice(true);
    $("#tenant-slice-title").attr("tabindex", "-1").trigger("focus");
  }

  // SlicePlus figures (instance counts, ssh commands) change with the instances: fetch the
  // chosen slice again when they do, at most a few times a second.
  var refetchSlice = _.debounce(function () {
    var s = selected !== null && xos.slicesPlus.get(selected);
    if (s) s.fetch({ success: function () { drawList(); } });
  }, 300);

  $(function () {
    xos.slicesPlus.on("sort change remove reset add", drawList);
    xos.instances.on("add remove change reset sort", function () { drawSlice(false); refetchSlice(); });
    xos.slicesPlus.startPolling();
    xos.instances.startPolling();
    $.getJSON("/xos/slice_roles/?no_hyperlinks=1").done(function (rows) {
      var names = _.pluck(rows || [], "role").filter(function (r) { return r; });
      if (names.length) sliceRoles = _.sortBy(names, function (r) { return r === "access" ? "" : r; });
      if (selected !== null && xos.slicesPlus.get(selected)) drawForm(xos.slicesPlus.get(selected));
    });
    xos.tenantview.fetch({ success: function () {
      var tv = view();
      if (!tv) return;
      if (tv.get("current_user_login_base")) {
        $("#tenant-new-name").attr("placeholder", tv.get("current_user_login_base") + "_myslice");
      }
      var options = function (ids, names) {
        return (ids || []).map(function (id, i) { return '<option value="' + esc(id) + '">' + esc(names[i]) + '</option>'; }).join("");
      };
      $("#tenant-new-image").html(options(tv.get("blessed_images"), tv.get("blessed_image_names") || []));
      $("#tenant-new-flavor").html(options(tv.get("blessed_flavors"), tv.get("blessed_flavor_names") || []));
      $("#tenant-new-card").prop("hidden", !tv.get("current_user_can_create_slice"));
      if (selected !== null) drawSlice(true);
    }});

    $("#tenant-slices").on("click", "button[data-id]", function () { choose(Number($(this).data("id"))); });

    $("#tenant-new").on("submit", function (ev) {
      ev.preventDefault();
      var tv = view();
      var slice = new xos.slicesPlus.model({
        name: $("#tenant-new-name").val(),
        description: $("#tenant-new-description").val(),
        site: tv ? tv.get("current_user_site_id") : null,
        default_image: Number($("#tenant-new-image").val()) || null,
        default_flavor: Number($("#tenant-new-flavor").val()) || null
      });
      slice.urlRoot = "/xoslib/slicesplus/";
      slice.save(null, {
        success: function (model) {
          $("#tenant-new-error").text("");
          $("#tenant-new")[0].reset();
          xos.slicesPlus.add(model.toJSON(), { merge: true });
          choose(model.id);
        },
        error: function (model, xhr) { $("#tenant-new-error").text(errorText(xhr, "The slice could not be created.")); }
      });
    });

    $("#tenant-edit").on("submit", function (ev) {
      ev.preventDefault();
      var s = selected !== null && xos.slicesPlus.get(selected);
      if (!s) return;
      var alloc = {};
      $("#tenant-sites input[data-site]").each(function () { alloc[$(this).data("site")] = Number($(this).val()) || 0; });
      var users = $("#tenant-users input[data-user]:checked").map(function () { return Number($(this).data("user")); }).get();
      // A role is sent for the members whose role changes (and new members not given `access`).
      var userRoles = {};
      $("#tenant-users select[data-role-for]").each(function () {
        var id = Number($(this).data("role-for"));
        var want = $(this).val();
        var was = String($(this).data("current") || "");
        if (users.indexOf(id) >= 0 && want !== (was || "access")) userRoles[String(id)] = want;
      });
      $("#tenant-edit-ok, #tenant-edit-error").text("");
      $("#tenant-save").prop("disabled", true);
      s.save({ site_allocation: alloc, users: users, user_roles: userRoles }, {
        patch: true,
        wait: true,
        success: function () {
          $("#tenant-save").prop("disabled", false);
          $("#tenant-edit-ok").text("Saved: the synchronizer is making it so.");
          xos.instances.fetch();
          drawList();
          drawSlice(true);
        },
        error: function (model, xhr) {
          $("#tenant-save").prop("disabled", false);
          $("#tenant-edit-error").text(errorText(xhr, "The slice could not be saved."));
        }
      });
    });

    $("#tenant-delete").on("click", function () {
      $("#tenant-delete-confirm").prop("hidden", false).trigger("focus");
    });
    $("#tenant-delete-confirm").on("click", function () {
      var s = selected !== null && xos.slicesPlus.get(selected);
      if (!s) return;
      s.destroy({
        wait: true,
        success: function () {
          selected = null;
          $("#tenant-slice").prop("hidden", true);
          drawList();
          $("#tenant-status").text("The slice was deleted.");
        },
        error: function (model, xhr) { $("#tenant-edit-error").text(errorText(xhr, "The slice could not be deleted.")); }
      });
    });
  });
})();
