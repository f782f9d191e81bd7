//! `xos syndicate-probe`: what a slice's instance does with its volumes. It reads the slice's
//! credentials (`$XOS_SLICE_DIR/syndicate/credentials.json`, delivered by the synchronizer),
//! writes an object to each volume it may write, reads it back, says so on stdout, and then
//! waits as a workload does (checking again every minute, so a volume delivered later is used
//! too). The storage configuration's instance runs it.

use super::garage::S3;
use std::time::Duration;

/// Once: every writable volume gets `probe/<instance>.txt`, read back. Returns the lines said.
async fn round(http: &reqwest::Client, creds: &serde_json::Value, instance: &str) -> Vec<String> {
    let endpoint = creds["endpoint"].as_str().unwrap_or_default();
    let key = creds["access_key_id"].as_str().unwrap_or_default();
    let secret = creds["secret_access_key"].as_str().unwrap_or_default();
    let region = creds["region"].as_str().unwrap_or("garage");
    let s3 = S3::with(http.clone(), endpoint, region, key, secret);
    let mut said = Vec::new();
    for v in creds["volumes"].as_array().into_iter().flatten() {
        let bucket = v["bucket"].as_str().unwrap_or_default();
        let object = format!("probe/{instance}.txt");
        let text = format!("written by instance {instance} through S3\n");
        if v["write"].as_bool() == Some(true) {
            match s3.put(bucket, &object, text.as_bytes()).await {
                Ok(a) if a.status == 200 => {}
                Ok(a) => {
                    said.push(format!(
                        "syndicate-probe: PUT s3://{bucket}/{object}: HTTP {}",
                        a.status
                    ));
                    continue;
                }
                Err(e) => {
                    said.push(format!("syndicate-probe: PUT s3://{bucket}/{object}: {e}"));
                    continue;
                }
            }
        }
        match s3.get(bucket, &object).await {
            Ok(a) if a.status == 200 && a.body == text.as_bytes() => said.push(format!(
                "syndicate-probe: wrote and read s3://{bucket}/{object} ({} bytes)",
                a.body.len()
            )),
            Ok(a) => said.push(format!(
                "syndicate-probe: GET s3://{bucket}/{object}: HTTP {}",
                a.status
            )),
            Err(e) => said.push(format!("syndicate-probe: GET s3://{bucket}/{object}: {e}")),
        }
    }
    said
}

pub fn run() -> ! {
    let dir = std::env::var("XOS_SLICE_DIR").unwrap_or_default();
    let instance = std::env::var("XOS_OBJECT_ID").unwrap_or_else(|_| std::process::id().to_string());
    let path = std::path::Path::new(&dir)
        .join("syndicate")
        .join("credentials.json");
    println!(
        "syndicate-probe: instance {instance}, credentials in {}",
        path.display()
    );
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1)
        }
    };
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap_or_default();
    let mut last = Vec::new();
    loop {
        let creds = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok());
        let said = match creds {
            Some(c) => rt.block_on(round(&http, &c, &instance)),
            None => vec![format!(
                "syndicate-probe: no credentials yet at {}",
                path.display()
            )],
        };
        if said != last {
            for line in &said {
                println!("{line}");
            }
            last = said;
        }
        let done = !last.is_empty() && last.iter().all(|l| l.contains("wrote and read"));
        std::thread::sleep(Duration::from_secs(if done { 60 } else { 2 }));
    }
}
