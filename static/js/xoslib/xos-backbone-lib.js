// xoslib's client, rebuilt: the global `xos` holds a Backbone collection per model (from
// XOS_MODELS, generated from the model registry by the server), named as XOS named them
// (`xos.slices`, `xos.sliceRoles`, `xos.slicePrivileges`, `xos.instances`, …) plus the xoslib
// objects (`xos.slicesPlus`, `xos.tenantview`).
//
// - Every request asks for ids instead of hyperlinks (`?no_hyperlinks=1`), as xoslib did.
// - Writes carry the CSRF token the server set at login (`xoscsrftoken` cookie →
//   `X-CSRFToken` header).
// - `collection.startPolling()` fetches now and every 10 s, and listens to `/xos/events`
//   (server-sent events) so changes made elsewhere arrive within a second.
// - Collections keep their models sorted by id, so every fetch ends with a `sort` event (the
//   guide's views redraw on `change`, `remove` and `sort`).
// - `model.save()` errors reach the caller's `error` callback with the field messages; the
//   collection also triggers `xos:error` with them.
(function (root) {
  "use strict";

  function cookie(name) {
    var parts = (document.cookie || "").split(";");
    for (var i = 0; i < parts.length; i++) {
      var kv = parts[i].trim().split("=");
      if (kv[0] === name) return decodeURIComponent(kv.slice(1).join("="));
    }
    return null;
  }

  if (root.jQuery) {
    root.jQuery.ajaxSetup({
      beforeSend: function (xhr, settings) {
        if (!/^(GET|HEAD|OPTIONS|TRACE)$/i.test(settings.type)) {
          var token = cookie("xoscsrftoken");
          if (token) xhr.setRequestHeader("X-CSRFToken", token);
        }
      }
    });
  }

  function withIds(url) {
    url = url.split("?")[0];
    return url + "?no_hyperlinks=1";
  }

  // XOS's collection names: sites, users, slices, sliceRoles, slicePrivileges, instances, …
  function collectionName(model) {
    var special = {
      SiteRole: "siteRoles", SliceRole: "sliceRoles", SlicePrivilege: "slicePrivileges",
      SitePrivilege: "sitePrivileges", SiteDeployment: "siteDeployments", NetworkTemplate: "networkTemplates",
      ControllerImages: "controller_images", ControllerNetwork: "controller_networks",
      ControllerSlice: "controller_slices", ControllerUser: "controller_users", ControllerSite: "controller_sites",
      ImageDeployments: "imageDeployments", DashboardView: "dashboardViews", UserDashboardView: "userDashboardViews"
    };
    if (special[model.name]) return special[model.name];
    return model.name.charAt(0).toLowerCase() + model.name.slice(1) + "s";
  }

  var XOSModel = Backbone.Model.extend({
    url: function () {
      var base = this.urlRoot || (this.collection && this.collection.urlRoot);
      return withIds(this.isNew() ? base : base + this.id + "/");
    },
    // Field errors of a refused save, as the server named them.
    fieldErrors: function () { return this._fieldErrors || {}; }
  });

  var XOSCollection = Backbone.Collection.extend({
    model: XOSModel,
    comparator: "id",
    url: function () { return withIds(this.urlRoot); },
    initialize: function () {
      this.isLoaded = false;
      this.fetching = false;
      this.startedLoad = false;
      this.failedLoad = false;
      var self = this;
      this.on("error", function (model, xhr) {
        var errors = {};
        try { errors = JSON.parse(xhr.responseText); } catch (e) { errors = { detail: [xhr.statusText] }; }
        if (model) model._fieldErrors = errors;
        self.trigger("xos:error", model, errors);
      });
    },
    fetch: function (options) {
      var self = this;
      options = options || {};
      var success = options.success, error = options.error;
      this.fetching = true;
      this.startedLoad = true;
      this.trigger("fetchStateChange");
      options.success = function () {
        self.fetching = false; self.isLoaded = true; self.failedLoad = false;
        self.trigger("fetchStateChange");
        if (success) success.apply(this, arguments);
      };
      options.error = function () {
        self.fetching = false; self.failedLoad = true;
        self.trigger("fetchStateChange");
        if (error) error.apply(this, arguments);
      };
      return Backbone.Collection.prototype.fetch.call(this, options);
    },
    startPolling: function () {
      if (this._polling) return;
      this._polling = true;
      var self = this;
      this.fetch();
      setInterval(function () { self.fetch(); }, 10000);
      xos._listen();
    },
    maybeFetch: function (options) {
      if (!this.isLoaded && !this.fetching) this.fetch(options);
    },
    refresh: function () { return this.fetch(); },
    filterBy: function (field, value) {
      return new Backbone.Collection(this.filter(function (m) { return m.get(field) == value; }));
    },
    getOrFetch: function (id) {
      var m = this.get(id);
      if (m) return m;
      m = new this.model({ id: id });
      m.collection = this;
      m.fetch();
      return m;
    }
  });

  function xoslib() {
    var self = this;
    this.byModel = {};
    this.models = {};
    (root.XOS_MODELS || []).forEach(function (model) {
      var Coll = XOSCollection.extend({ urlRoot: "/xos/" + model.plural + "/" });
      var coll = new Coll();
      coll.modelName = model.name;
      coll.validators = model.validators;
      self[collectionName(model)] = coll;
      self.byModel[model.name] = coll;
      self.models[model.name] = Coll;
    });
    var Plus = XOSCollection.extend({ urlRoot: "/xoslib/slicesplus/" });
    this.slicesPlus = new Plus();
    this.byModel.SlicePlus = this.slicesPlus;
    var Tenant = XOSCollection.extend({ urlRoot: "/xoslib/tenantview/" });
    this.tenantview = new Tenant();
  }

  // One event stream for all collections: a change refetches that object into its collections
  // (`change`/`add` + `sort` follow), a delete removes it; a reset refetches everything.
  xoslib.prototype._listen = function () {
    if (this._source || !root.EventSource) return;
    var self = this;
    var source = new EventSource("/xos/events");
    this._source = source;
    function collections(model) {
      var out = [];
      if (self.byModel[model]) out.push(self.byModel[model]);
      if (model === "Slice" && self.slicesPlus._polling) out.push(self.slicesPlus);
      return out.filter(function (c) { return c._polling; });
    }
    source.addEventListener("change", function (ev) {
      var e;
      try { e = JSON.parse(ev.data); } catch (err) { return; }
      collections(e.model).forEach(function (coll) {
        if (e.kind === "delete") {
          var gone = coll.get(e.id);
          if (gone) coll.remove(gone);
          return;
        }
        Backbone.ajax({
          url: withIds(coll.urlRoot + e.id + "/"),
          dataType: "json",
          success: function (data) { coll.add(data, { merge: true }); coll.sort(); },
          error: function (xhr) { if (xhr.status === 404) { var m = coll.get(e.id); if (m) coll.remove(m); } }
        });
      });
    });
    source.addEventListener("reset", function () {
      Object.keys(self.byModel).forEach(function (k) { if (self.byModel[k]._polling) self.byModel[k].fetch(); });
    });
  };

  // Name of an object by id in a collection (xoslib's idToName): "#id" when unknown.
  xoslib.prototype.idToName = function (id, collectionName, field) {
    var m = this[collectionName] && this[collectionName].get(id);
    return m ? m.get(field || "name") : "#" + id;
  };

  root.XOSModel = XOSModel;
  root.XOSCollection = XOSCollection;
  root.xoslib = xoslib;
  root.xos = new xoslib();
})(this);
