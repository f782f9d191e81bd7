//! The SSH public keys an instance carries, as XOS's `sync_instances` gathered them: the keys of
//! its slice's members (their SlicePrivilege), of the instance's creator, of the slice's creator
//! and of the slice's service, each once. Every backend delivers them: OpenStack and EC2 in the
//! instance's cloud-config user data (`ssh_authorized_keys`, as XOS wrote it), the local backend
//! in a file the process is pointed at (`XOS_AUTHORIZED_KEYS`).

use registry::SqlType;
use registry::fields::instance;
use store::db::{Sql, Value};
use store::{Record, Store, StoreError};

/// The public keys of instance `obj`, in the order above, without blanks or repeats.
pub async fn instance_keys(store: &Store, obj: &Record) -> Result<Vec<String>, StoreError> {
    let mut sql = Sql::new(
        "SELECT u.public_key, CAST(0 AS BIGINT) AS k, sp.id AS o FROM core_sliceprivilege sp JOIN core_user u ON u.id = sp.user_id \
         WHERE NOT sp.deleted AND NOT u.deleted AND sp.slice_id = ",
    );
    let slice = obj.opt(instance::SLICE).unwrap_or(0);
    sql.bind(Value::Int(slice));
    sql.push(
        " UNION ALL SELECT u.public_key, CAST(1 AS BIGINT), CAST(0 AS BIGINT) FROM core_user u WHERE NOT u.deleted AND u.id = \
         (SELECT creator_id FROM core_instance WHERE id = ",
    );
    sql.bind(Value::Int(obj.id()));
    sql.push(
        ") UNION ALL SELECT u.public_key, CAST(2 AS BIGINT), CAST(0 AS BIGINT) FROM core_user u WHERE NOT u.deleted AND u.id = \
         (SELECT creator_id FROM core_slice WHERE id = ",
    );
    sql.bind(Value::Int(slice));
    sql.push(
        ") UNION ALL SELECT sv.public_key, CAST(3 AS BIGINT), CAST(0 AS BIGINT) FROM core_service sv WHERE NOT sv.deleted AND sv.id = \
         (SELECT service_id FROM core_slice WHERE id = ",
    );
    sql.bind(Value::Int(slice));
    sql.push(") ORDER BY 2, 3");
    let rows = store
        .db()
        .fetch(&sql, &[SqlType::Text, SqlType::Int, SqlType::Int])
        .await?;
    let mut keys: Vec<String> = Vec::new();
    for r in rows {
        let Some(k) = r[0].as_str().map(str::trim).filter(|k| !k.is_empty()) else {
            continue;
        };
        if !keys.iter().any(|have| have == k) {
            keys.push(k.to_string());
        }
    }
    Ok(keys)
}

/// The user data an instance boots with: its own `user_data`, with the keys added as
/// cloud-config `ssh_authorized_keys` (XOS's `get_userdata`). Empty own data: a cloud-config of
/// the keys alone. Own data that is a cloud-config without `ssh_authorized_keys`: the list is
/// appended. Anything else (a script, a config listing its own keys) is sent as written: the
/// author chose what the instance gets.
pub fn user_data_with_keys(own: &str, keys: &[String]) -> String {
    let list = || {
        let mut s = String::from("ssh_authorized_keys:\n");
        for k in keys {
            // A key is one line; quoted, so YAML reads it as a string whatever it holds.
            s.push_str(&format!(
                "  - {}\n",
                serde_json::Value::from(k.replace(['\n', '\r'], " "))
            ));
        }
        s
    };
    let own_trimmed = own.trim_start();
    if keys.is_empty() {
        own.to_string()
    } else if own_trimmed.is_empty() {
        format!("#cloud-config\n{}", list())
    } else if own_trimmed.starts_with("#cloud-config") && !own.contains("ssh_authorized_keys") {
        let mut s = own.to_string();
        if !s.ends_with('\n') {
            s.push('\n');
        }
        s.push_str(&list());
        s
    } else {
        own.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::user_data_with_keys;

    #[test]
    fn keys_become_cloud_config_and_own_data_is_kept() {
        let keys = vec!["ssh-ed25519 AAAA a@x".to_string(), "ssh-rsa BBBB b@y".to_string()];
        assert_eq!(
            user_data_with_keys("", &keys),
            "#cloud-config\nssh_authorized_keys:\n  - \"ssh-ed25519 AAAA a@x\"\n  - \"ssh-rsa BBBB b@y\"\n"
        );
        assert_eq!(
            user_data_with_keys("#cloud-config\npackages: [nginx]", &keys),
            "#cloud-config\npackages: [nginx]\nssh_authorized_keys:\n  - \"ssh-ed25519 AAAA a@x\"\n  - \"ssh-rsa BBBB b@y\"\n"
        );
        // A script, or a config with its own key list, is the author's choice.
        assert_eq!(
            user_data_with_keys("#!/bin/sh\necho hi\n", &keys),
            "#!/bin/sh\necho hi\n"
        );
        let own = "#cloud-config\nssh_authorized_keys: []\n";
        assert_eq!(user_data_with_keys(own, &keys), own);
        assert_eq!(user_data_with_keys("x", &[]), "x");
        // A key cannot break out of its line.
        let evil = vec!["ssh-rsa A\nruncmd: [rm]".to_string()];
        assert_eq!(
            user_data_with_keys("", &evil),
            "#cloud-config\nssh_authorized_keys:\n  - \"ssh-rsa A runcmd: [rm]\"\n"
        );
    }
}
