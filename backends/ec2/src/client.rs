//! A small client for the EC2 Query API: the handful of actions the EC2 backend needs, signed
//! with SigV4 (`aws-sigv4`), sent with `reqwest`, answers read with `roxmltree`. The full AWS SDK
//! would do the same at many times the compile cost (see docs/synchronizer.md, "EC2").

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

/// The EC2 API version of the Query API requests.
const API_VERSION: &str = "2016-11-15";

/// Why an EC2 call failed.
#[derive(Debug, thiserror::Error)]
pub enum Ec2Error {
    /// EC2 answered with an error (`InvalidAMIID.NotFound`, `AuthFailure`, …).
    #[error("EC2 refused {action}: {code}: {message}")]
    Api {
        action: String,
        code: String,
        message: String,
    },
    /// The endpoint did not answer.
    #[error("EC2 endpoint {endpoint} unreachable: {reason}")]
    Unreachable { endpoint: String, reason: String },
    /// An answer we could not read.
    #[error("unexpected answer from EC2 to {action}: {reason}")]
    Protocol { action: String, reason: String },
    /// The controller's settings are incomplete.
    #[error("{0}")]
    Config(String),
}

impl Ec2Error {
    /// An authentication failure (bad keys): no use retrying soon.
    pub fn is_auth(&self) -> bool {
        matches!(self, Ec2Error::Api { code, .. } if matches!(code.as_str(),
            "AuthFailure" | "InvalidClientTokenId" | "SignatureDoesNotMatch" | "UnrecognizedClientException"
            | "InvalidAccessKeyId" | "AccessDenied" | "UnauthorizedOperation"))
    }
    /// The error code EC2 gave.
    pub fn code(&self) -> Option<&str> {
        match self {
            Ec2Error::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// Where and as whom to call EC2.
#[derive(Clone)]
pub struct Ec2Config {
    /// `https://ec2.<region>.amazonaws.com/` by default; a test emulator's URL otherwise.
    pub endpoint: String,
    pub region: String,
    pub access_key: String,
    pub secret_key: String,
}

impl std::fmt::Debug for Ec2Config {
    // The secret key never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ec2Config")
            .field("endpoint", &self.endpoint)
            .field("region", &self.region)
            .field("access_key", &self.access_key)
            .field("secret_key", &"***")
            .finish()
    }
}

/// An EC2 client; cheap to clone. Counts its calls (the idle-pass figure).
#[derive(Clone)]
pub struct Ec2Client {
    http: reqwest::Client,
    config: Ec2Config,
    calls: Arc<AtomicU64>,
}

/// An instance as DescribeInstances reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct Ec2Instance {
    pub id: String,
    pub image_id: String,
    pub instance_type: String,
    /// pending, running, stopping, stopped, shutting-down, terminated.
    pub state: String,
    pub private_ip: Option<String>,
    pub public_ip: Option<String>,
    pub zone: Option<String>,
    pub tags: Vec<(String, String)>,
}

impl Ec2Instance {
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
    /// Gone or going: a terminated instance stays listed for a while.
    pub fn is_gone(&self) -> bool {
        matches!(self.state.as_str(), "terminated" | "shutting-down")
    }
}

/// An image as DescribeImages reports it.
#[derive(Clone, Debug, PartialEq)]
pub struct Ec2Image {
    pub id: String,
    pub name: String,
    pub architecture: String,
    pub virtualization: String,
}

/// What RunInstances needs.
#[derive(Clone, Debug)]
pub struct RunRequest<'a> {
    pub image_id: &'a str,
    pub instance_type: &'a str,
    pub zone: Option<&'a str>,
    pub key_name: Option<&'a str>,
    /// Cloud-init user data (base64-encoded on the wire); empty: none.
    pub user_data: &'a str,
    /// Idempotency token for real AWS (moto ignores it; the tag lookup is what protects there).
    pub client_token: &'a str,
    pub tags: &'a [(&'a str, String)],
}

impl Ec2Client {
    pub fn new(config: Ec2Config) -> Result<Ec2Client, Ec2Error> {
        if config.access_key.is_empty() || config.secret_key.is_empty() {
            return Err(Ec2Error::Config(
                "the controller has no access key id (admin_user) or secret access key (admin_password)"
                    .into(),
            ));
        }
        if config.region.is_empty() {
            return Err(Ec2Error::Config("the controller has no region (domain)".into()));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| Ec2Error::Config(format!("HTTP client: {e}")))?;
        Ok(Ec2Client {
            http,
            config,
            calls: Arc::new(AtomicU64::new(0)),
        })
    }

    /// The default endpoint of a region.
    pub fn default_endpoint(region: &str) -> String {
        format!("https://ec2.{region}.amazonaws.com/")
    }

    /// How many API calls this client made.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    pub fn endpoint(&self) -> &str {
        &self.config.endpoint
    }

    /// One signed Query API call; the XML answer.
    pub async fn call(&self, action: &str, params: &[(String, String)]) -> Result<String, Ec2Error> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        // The serializer is not Send: build the body in its own scope, before any await.
        let body = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("Action", action);
            form.append_pair("Version", API_VERSION);
            for (k, v) in params {
                form.append_pair(k, v);
            }
            form.finish()
        };

        let content_type = "application/x-www-form-urlencoded; charset=utf-8";
        let identity = Credentials::new(
            &self.config.access_key,
            &self.config.secret_key,
            None,
            None,
            "xos-controller",
        )
        .into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(&self.config.region)
            .name("ec2")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .map_err(|e| Ec2Error::Config(format!("signing: {e}")))?
            .into();
        let host = url::Url::parse(&self.config.endpoint)
            .map_err(|e| Ec2Error::Config(format!("bad endpoint {}: {e}", self.config.endpoint)))?;
        let host_header = match (host.host_str(), host.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            _ => return Err(Ec2Error::Config(format!("bad endpoint {}", self.config.endpoint))),
        };
        let headers = [("host", host_header.as_str()), ("content-type", content_type)];
        let signable = SignableRequest::new(
            "POST",
            &self.config.endpoint,
            headers.iter().copied(),
            SignableBody::Bytes(body.as_bytes()),
        )
        .map_err(|e| Ec2Error::Config(format!("signing: {e}")))?;
        let (instructions, _) = sign(signable, &params)
            .map_err(|e| Ec2Error::Config(format!("signing: {e}")))?
            .into_parts();
        let mut req = self
            .http
            .post(&self.config.endpoint)
            .header("content-type", content_type)
            .body(body);
        for (name, value) in instructions.headers() {
            req = req.header(name, value);
        }
        let resp = req.send().await.map_err(|e| Ec2Error::Unreachable {
            endpoint: self.config.endpoint.clone(),
            reason: root_cause(&e),
        })?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| Ec2Error::Unreachable {
            endpoint: self.config.endpoint.clone(),
            reason: root_cause(&e),
        })?;
        if status.is_success() {
            return Ok(text);
        }
        let (code, message) = parse_error(&text).unwrap_or_else(|| {
            (
                format!("HTTP {}", status.as_u16()),
                text.chars().take(200).collect(),
            )
        });
        Err(Ec2Error::Api {
            action: action.to_string(),
            code,
            message,
        })
    }

    /// The region's availability zones that are available.
    pub async fn zones(&self) -> Result<Vec<String>, Ec2Error> {
        let xml = self.call("DescribeAvailabilityZones", &[]).await?;
        let doc = parse(&xml, "DescribeAvailabilityZones")?;
        let mut out: Vec<String> = doc
            .descendants()
            .filter(|n| n.has_tag_name("item") && child_text(*n, "zoneName").is_some())
            .filter(|n| child_text(*n, "zoneState").is_none_or(|s| s == "available"))
            .filter_map(|n| child_text(n, "zoneName"))
            .collect();
        out.sort();
        Ok(out)
    }

    /// The account's own images plus the allowed public ones.
    pub async fn images(&self, allowed: &[String]) -> Result<Vec<Ec2Image>, Ec2Error> {
        let mut out = self.describe_images(&[("Owner.1".into(), "self".into())]).await?;
        if !allowed.is_empty() {
            let params: Vec<(String, String)> = allowed
                .iter()
                .enumerate()
                .map(|(i, id)| (format!("ImageId.{}", i + 1), id.clone()))
                .collect();
            for img in self.describe_images(&params).await? {
                if !out.iter().any(|o| o.id == img.id) {
                    out.push(img);
                }
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(out)
    }

    /// Check that an AMI exists (EC2 answers `InvalidAMIID.NotFound` otherwise).
    pub async fn check_image(&self, id: &str) -> Result<(), Ec2Error> {
        let found = self.describe_images(&[("ImageId.1".into(), id.into())]).await?;
        if found.iter().any(|i| i.id == id) {
            Ok(())
        } else {
            Err(Ec2Error::Api {
                action: "DescribeImages".into(),
                code: "InvalidAMIID.NotFound".into(),
                message: format!("The image id '{id}' does not exist"),
            })
        }
    }

    async fn describe_images(&self, params: &[(String, String)]) -> Result<Vec<Ec2Image>, Ec2Error> {
        let xml = self.call("DescribeImages", params).await?;
        let doc = parse(&xml, "DescribeImages")?;
        Ok(doc
            .descendants()
            .filter(|n| n.has_tag_name("item") && child_text(*n, "imageId").is_some())
            .map(|n| Ec2Image {
                id: child_text(n, "imageId").unwrap_or_default(),
                name: child_text(n, "name").unwrap_or_default(),
                architecture: child_text(n, "architecture").unwrap_or_default(),
                virtualization: child_text(n, "virtualizationType").unwrap_or_default(),
            })
            .collect())
    }

    /// Instances carrying tag `key` (with `value`, when given): one call for all of them.
    pub async fn instances_tagged(
        &self,
        key: &str,
        value: Option<&str>,
    ) -> Result<Vec<Ec2Instance>, Ec2Error> {
        let params = match value {
            Some(v) => vec![
                ("Filter.1.Name".to_string(), format!("tag:{key}")),
                ("Filter.1.Value.1".to_string(), v.to_string()),
            ],
            None => vec![
                ("Filter.1.Name".to_string(), "tag-key".to_string()),
                ("Filter.1.Value.1".to_string(), key.to_string()),
            ],
        };
        self.describe_instances(&params).await
    }

    /// One instance by id (None when EC2 no longer knows it).
    pub async fn instance(&self, id: &str) -> Result<Option<Ec2Instance>, Ec2Error> {
        match self
            .describe_instances(&[("InstanceId.1".into(), id.into())])
            .await
        {
            Ok(v) => Ok(v.into_iter().next()),
            Err(e) if e.code().is_some_and(|c| c.starts_with("InvalidInstanceID")) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn describe_instances(&self, params: &[(String, String)]) -> Result<Vec<Ec2Instance>, Ec2Error> {
        let xml = self.call("DescribeInstances", params).await?;
        let doc = parse(&xml, "DescribeInstances")?;
        Ok(doc
            .descendants()
            .filter(|n| n.has_tag_name("instancesSet"))
            .flat_map(|set| set.children().filter(|c| c.has_tag_name("item")))
            .map(instance_of)
            .collect())
    }

    /// Run one instance; returns it as RunInstances reports it.
    pub async fn run(&self, r: &RunRequest<'_>) -> Result<Ec2Instance, Ec2Error> {
        let mut params: Vec<(String, String)> = vec![
            ("ImageId".into(), r.image_id.into()),
            ("InstanceType".into(), r.instance_type.into()),
            ("MinCount".into(), "1".into()),
            ("MaxCount".into(), "1".into()),
            ("ClientToken".into(), r.client_token.into()),
        ];
        if let Some(z) = r.zone {
            params.push(("Placement.AvailabilityZone".into(), z.into()));
        }
        if let Some(k) = r.key_name {
            params.push(("KeyName".into(), k.into()));
        }
        if !r.user_data.is_empty() {
            use base64::Engine as _;
            params.push((
                "UserData".into(),
                base64::engine::general_purpose::STANDARD.encode(r.user_data),
            ));
        }
        if !r.tags.is_empty() {
            params.push(("TagSpecification.1.ResourceType".into(), "instance".into()));
            for (i, (k, v)) in r.tags.iter().enumerate() {
                params.push((format!("TagSpecification.1.Tag.{}.Key", i + 1), k.to_string()));
                params.push((format!("TagSpecification.1.Tag.{}.Value", i + 1), v.clone()));
            }
        }
        let xml = self.call("RunInstances", &params).await?;
        let doc = parse(&xml, "RunInstances")?;
        doc.descendants()
            .find(|n| n.has_tag_name("instancesSet"))
            .and_then(|set| set.children().find(|c| c.has_tag_name("item")))
            .map(instance_of)
            .ok_or_else(|| Ec2Error::Protocol {
                action: "RunInstances".into(),
                reason: "no instance in the answer".into(),
            })
    }

    pub async fn terminate(&self, id: &str) -> Result<(), Ec2Error> {
        self.simple("TerminateInstances", &[("InstanceId.1", id)]).await
    }
    pub async fn stop(&self, id: &str) -> Result<(), Ec2Error> {
        self.simple("StopInstances", &[("InstanceId.1", id)]).await
    }
    pub async fn start(&self, id: &str) -> Result<(), Ec2Error> {
        self.simple("StartInstances", &[("InstanceId.1", id)]).await
    }
    pub async fn set_instance_type(&self, id: &str, instance_type: &str) -> Result<(), Ec2Error> {
        self.simple(
            "ModifyInstanceAttribute",
            &[("InstanceId", id), ("InstanceType.Value", instance_type)],
        )
        .await
    }

    /// Import a public key unless a key pair of that name exists.
    pub async fn ensure_key_pair(&self, name: &str, public_key: &str) -> Result<(), Ec2Error> {
        match self.simple("DescribeKeyPairs", &[("KeyName.1", name)]).await {
            Ok(()) => return Ok(()),
            Err(e) if e.code().is_some_and(|c| c.starts_with("InvalidKeyPair")) => {}
            Err(e) => return Err(e),
        }
        use base64::Engine;
        let material = base64::engine::general_purpose::STANDARD.encode(public_key.trim());
        self.simple(
            "ImportKeyPair",
            &[("KeyName", name), ("PublicKeyMaterial", material.as_str())],
        )
        .await
    }

    async fn simple(&self, action: &str, params: &[(&str, &str)]) -> Result<(), Ec2Error> {
        let params: Vec<(String, String)> = params
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.call(action, &params).await.map(|_| ())
    }
}

/// The innermost reason of an HTTP failure (`Connection refused`), not reqwest's wrapper.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

fn parse<'a>(xml: &'a str, action: &str) -> Result<roxmltree::Document<'a>, Ec2Error> {
    roxmltree::Document::parse(xml).map_err(|e| Ec2Error::Protocol {
        action: action.to_string(),
        reason: e.to_string(),
    })
}

/// `<Errors><Error><Code>…</Code><Message>…</Message>` (or the bare `<Error>` of other services).
fn parse_error(xml: &str) -> Option<(String, String)> {
    let doc = roxmltree::Document::parse(xml).ok()?;
    let err = doc.descendants().find(|n| n.has_tag_name("Error"))?;
    Some((
        child_text(err, "Code")?,
        child_text(err, "Message").unwrap_or_default(),
    ))
}

fn child_text(n: roxmltree::Node, name: &str) -> Option<String> {
    n.children()
        .find(|c| c.is_element() && c.tag_name().name() == name)
        .and_then(|c| c.text())
        .map(|t| t.trim().to_string())
}

fn instance_of(n: roxmltree::Node) -> Ec2Instance {
    let state = n
        .children()
        .find(|c| c.has_tag_name("instanceState"))
        .and_then(|s| child_text(s, "name"))
        .unwrap_or_default();
    let zone = n
        .children()
        .find(|c| c.has_tag_name("placement"))
        .and_then(|p| child_text(p, "availabilityZone"));
    let tags = n
        .children()
        .find(|c| c.has_tag_name("tagSet"))
        .map(|set| {
            set.children()
                .filter(|c| c.has_tag_name("item"))
                .filter_map(|t| Some((child_text(t, "key")?, child_text(t, "value").unwrap_or_default())))
                .collect()
        })
        .unwrap_or_default();
    Ec2Instance {
        id: child_text(n, "instanceId").unwrap_or_default(),
        image_id: child_text(n, "imageId").unwrap_or_default(),
        instance_type: child_text(n, "instanceType").unwrap_or_default(),
        state,
        private_ip: child_text(n, "privateIpAddress").filter(|s| !s.is_empty()),
        public_ip: child_text(n, "ipAddress").filter(|s| !s.is_empty()),
        zone,
        tags,
    }
}

impl backend_kit::CountsCalls for Ec2Client {
    fn calls(&self) -> u64 {
        Ec2Client::calls(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_and_instances_parse() {
        let err = r#"<?xml version="1.0" encoding="UTF-8"?>
<Response><Errors><Error><Code>InvalidAMIID.NotFound</Code><Message>The image id '[ami-x]' does not exist</Message></Error></Errors><RequestID>1</RequestID></Response>"#;
        assert_eq!(
            parse_error(err),
            Some((
                "InvalidAMIID.NotFound".into(),
                "The image id '[ami-x]' does not exist".into()
            ))
        );
        let xml = r#"<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">
<reservationSet><item><instancesSet><item>
<instanceId>i-1</instanceId><imageId>ami-1</imageId><instanceState><code>16</code><name>running</name></instanceState>
<instanceType>t2.micro</instanceType><placement><availabilityZone>us-east-1a</availabilityZone></placement>
<privateIpAddress>10.0.0.5</privateIpAddress><ipAddress></ipAddress>
<tagSet><item><key>xos-instance-id</key><value>7</value></item></tagSet>
</item></instancesSet></item></reservationSet></DescribeInstancesResponse>"#;
        let doc = roxmltree::Document::parse(xml).unwrap();
        let items: Vec<Ec2Instance> = doc
            .descendants()
            .filter(|n| n.has_tag_name("instancesSet"))
            .flat_map(|set| set.children().filter(|c| c.has_tag_name("item")))
            .map(instance_of)
            .collect();
        assert_eq!(items.len(), 1);
        let i = &items[0];
        assert_eq!(
            (i.id.as_str(), i.state.as_str(), i.instance_type.as_str()),
            ("i-1", "running", "t2.micro")
        );
        assert_eq!(i.private_ip.as_deref(), Some("10.0.0.5"));
        assert_eq!(i.public_ip, None);
        assert_eq!(i.zone.as_deref(), Some("us-east-1a"));
        assert_eq!(i.tag("xos-instance-id"), Some("7"));
    }

    /// Quota errors cannot be provoked on moto_server (it has no instance limits); this is the
    /// answer AWS documents for them, and the status line it becomes.
    #[test]
    fn a_quota_error_reads_clearly() {
        let body = r#"<?xml version="1.0" encoding="UTF-8"?>
<Response><Errors><Error><Code>InstanceLimitExceeded</Code><Message>You have requested more instances (21) than your current instance limit of 20 allows for the specified instance type.</Message></Error></Errors><RequestID>r</RequestID></Response>"#;
        let (code, message) = parse_error(body).unwrap();
        let e = Ec2Error::Api {
            action: "RunInstances".into(),
            code,
            message,
        };
        assert_eq!(e.code(), Some("InstanceLimitExceeded"));
        assert_eq!(
            e.to_string(),
            "EC2 refused RunInstances: InstanceLimitExceeded: You have requested more instances (21) \
             than your current instance limit of 20 allows for the specified instance type."
        );
    }

    #[test]
    fn the_secret_key_is_not_in_debug_output() {
        let c = Ec2Config {
            endpoint: "http://127.0.0.1:1/".into(),
            region: "us-east-1".into(),
            access_key: "AKID".into(),
            secret_key: "very-secret".into(),
        };
        assert!(!format!("{c:?}").contains("very-secret"));
    }
}
