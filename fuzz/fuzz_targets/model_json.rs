//! The generic model layer's decoding of API input on arbitrary bytes: a JSON body for a model
//! (chosen by the first byte) decoded as a create and as a partial update, and the rest as a
//! list query string. Bad input must become field errors, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use store::{ListQuery, decode_body};

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let models = &registry::registry().models;
    let model = &models[pick as usize % models.len()];
    if let Ok(serde_json::Value::Object(body)) = serde_json::from_slice(rest) {
        let _ = decode_body(model, &body, true);
        let _ = decode_body(model, &body, false);
    }
    let params: Vec<(String, String)> = url::form_urlencoded::parse(rest).into_owned().collect();
    let _ = ListQuery::parse(model, &params);
});
