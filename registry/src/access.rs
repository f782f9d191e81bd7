//! Who may read and write a model's rows, declared with the model. Admins (not read-only) and
//! the system may do everything; a read-only user writes nothing; everything else is this
//! declaration, which the store's permission checks match on exhaustively
//! (`store/src/permissions.rs`). A new model picks one of the general forms
//! ([`Read::Slice`] + [`Write::Slice`], [`Read::Owner`] + [`Write::Owner`], [`Write::SiteRole`])
//! and needs no code elsewhere; the forms named after one model are XOS's own special cases.

use serde::{Deserialize, Serialize};

/// Who reads a model's rows (admins read everything).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Read {
    /// Every user.
    #[default]
    All,
    /// Admins only: rows that hold a backend's endpoints, account ids and tenants (a
    /// Controller), which no tenant needs and any tenant could misuse.
    Admins,
    /// The members of the slice reached from the row by this path of foreign keys (`["slice"]`,
    /// `["instance", "slice"]`; empty: the row is the slice): its creator, the PIs and admins of
    /// its site, the users holding a privilege on it.
    Slice(Vec<String>),
    /// The user the named foreign key points at (a user's own tokens and dashboards).
    Owner(String),
    /// Users: themselves, the users of sites they run, the members of their slices.
    Users,
    /// Site privileges: one's own, and those of sites one runs.
    SitePrivileges,
    /// Slice privileges: one's own, and those of slices one manages.
    SlicePrivileges,
    /// Networks: open to all slices, owned by or joined to a slice one sees.
    Networks,
    /// The members of the object reached by `path` (empty: the row itself): the users the
    /// link model `through` ties to it (one foreign key to that object, one to User), as a
    /// CDN content provider's users (XOS's `ContentProvider.users`).
    Members { path: Vec<String>, through: String },
    /// The user the foreign key `owner` points at, and everyone when the boolean `private` is
    /// false (a Syndicate volume: XOS's `Volume.select_by_user`).
    OwnerOrPublic { owner: String, private: String },
}

/// Who writes a model's rows besides admins.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Write {
    /// Nobody else.
    #[default]
    Admins,
    /// The managers of the slice reached by `slice` (a path as in [`Read::Slice`]): its creator,
    /// its site's PIs and admins, its slice admins; with `members` also the users holding any
    /// privilege on it. Every state of the row (before and after a change) must pass, and each
    /// `sees` foreign key (field, model) must point at a row the writer can see (link rows).
    Slice {
        slice: Vec<String>,
        members: bool,
        sees: Vec<(String, String)>,
    },
    /// The user the named foreign key points at, for itself only; `update: false` allows create
    /// and delete only.
    Owner { field: String, update: bool },
    /// Users holding one of `roles` at each site reached by `sites` (paths as in
    /// [`Read::Slice`]; empty: the row is the site); `add_remove: false` for rows they may
    /// change but only admins create and delete (a site).
    SiteRole {
        sites: Vec<Vec<String>>,
        roles: Vec<String>,
        add_remove: bool,
    },
    /// Users: site PIs/admins for the users of their site, never above their own rank.
    Users,
    /// Slices: site PIs/admins create them at their site, managers change them.
    Slices,
    /// Site privileges: granted at or below one's own rank at the site, never to oneself.
    SitePrivileges,
    /// Slice privileges: granted by slice managers, never to oneself.
    SlicePrivileges,
    /// The members of the object reached by `path` (as in [`Read::Members`]), before and after
    /// the change: XOS's `ContentProvider.can_update`, which its origin servers, prefixes and
    /// access maps defer to. Creating the object itself (an empty path) stays with admins.
    Members { path: Vec<String>, through: String },
}

/// A model's read and write rules.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Access {
    pub read: Read,
    pub write: Write,
}

/// A dotted path of foreign keys (`"instance.slice"`; `""`: the row itself).
fn path(p: &str) -> Vec<String> {
    p.split('.')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

impl Access {
    /// Rows of a slice, reached by a dotted path of foreign keys (`"slice"`,
    /// `"instance.slice"`): its members read them, its managers write them.
    pub fn slice(path_to_slice: &str) -> Access {
        Access {
            read: Read::Slice(path(path_to_slice)),
            write: Write::Slice {
                slice: path(path_to_slice),
                members: false,
                sees: Vec::new(),
            },
        }
    }

    /// Rows of a slice its members write too (not only its managers).
    pub fn slice_members(path_to_slice: &str) -> Access {
        let mut a = Access::slice(path_to_slice);
        if let Write::Slice { members, .. } = &mut a.write {
            *members = true;
        }
        a
    }

    /// Rows of a slice that only admins (and the synchronizer) write, e.g. controller rows.
    pub fn slice_read_only(path_to_slice: &str) -> Access {
        Access {
            read: Read::Slice(path(path_to_slice)),
            write: Write::Admins,
        }
    }

    /// A link row: besides the slice, the writer must see the row `field` points at (`model`).
    pub fn sees(mut self, field: &str, model: &str) -> Access {
        if let Write::Slice { sees, .. } = &mut self.write {
            sees.push((field.to_string(), model.to_string()));
        }
        self
    }

    /// A user's own rows (`field` names the user).
    pub fn owner(field: &str, update: bool) -> Access {
        Access {
            read: Read::Owner(field.to_string()),
            write: Write::Owner {
                field: field.to_string(),
                update,
            },
        }
    }

    /// A user's own rows that only admins write.
    pub fn owner_read_only(field: &str) -> Access {
        Access {
            read: Read::Owner(field.to_string()),
            write: Write::Admins,
        }
    }

    /// Read by all, written by holders of `roles` at every site the `sites` paths reach
    /// (`"site"`, `"site_deployment.site"`; `""`: the row is the site).
    pub fn site_role(sites: &[&str], roles: &[&str], add_remove: bool) -> Access {
        Access {
            read: Read::All,
            write: Write::SiteRole {
                sites: sites.iter().map(|p| path(p)).collect(),
                roles: roles.iter().map(|r| r.to_string()).collect(),
                add_remove,
            },
        }
    }

    /// Rows of an object with members (`""`: the object itself, `"contentProvider"`): the
    /// users the link model `through` ties to it read and write them.
    pub fn members(path_to_object: &str, through: &str) -> Access {
        Access {
            read: Read::Members {
                path: path(path_to_object),
                through: through.to_string(),
            },
            write: Write::Members {
                path: path(path_to_object),
                through: through.to_string(),
            },
        }
    }

    /// Read and written by admins only.
    pub fn admins_only() -> Access {
        Access {
            read: Read::Admins,
            write: Write::Admins,
        }
    }

    /// Replace the write rule.
    pub fn write(mut self, write: Write) -> Access {
        self.write = write;
        self
    }

    /// Replace the read rule (a link row read like one end, written like the other).
    pub fn read(mut self, read: Read) -> Access {
        self.read = read;
        self
    }

    /// One of XOS's special cases.
    pub fn special(read: Read, write: Write) -> Access {
        Access { read, write }
    }
}
