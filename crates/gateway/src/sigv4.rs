//! AWS Signature Version 4 for requests to Bedrock, with `aws-sigv4` (the AWS SDKs' signer):
//! the request is signed last, once its URI, headers and body are what will be sent, so the
//! signature covers exactly those bytes. The client's own AWS headers never reach this point
//! (the upstream phase drops them), so the provider's credentials are the only ones upstream.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use bytes::Bytes;
use http_body_util::Full;

use crate::config::AwsSigning;

/// The signing name of Bedrock's runtime API.
const SERVICE: &str = "bedrock";

/// Why a request could not be signed.
#[derive(Debug, thiserror::Error)]
#[error("cannot sign the request to Bedrock: {0}")]
pub struct SigningFailed(String);

/// Signs `request` (whose body is `body`) for `aws` at `time`: sets `authorization`,
/// `x-amz-date` and, with temporary credentials, `x-amz-security-token`.
pub fn sign_request(
    request: &mut hyper::Request<Full<Bytes>>,
    body: &[u8],
    aws: &AwsSigning,
    time: SystemTime,
) -> Result<(), SigningFailed> {
    let identity = Credentials::new(
        &aws.access_key_id,
        aws.secret_access_key.expose(),
        aws.session_token.as_ref().map(|t| t.expose().to_owned()),
        None,
        "goodhart",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(&aws.region)
        .name(SERVICE)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| SigningFailed(e.to_string()))?
        .into();
    let uri = request.uri().to_string();
    let headers = request
        .headers()
        .iter()
        .filter_map(|(name, value)| Some((name.as_str(), value.to_str().ok()?)));
    let signable = SignableRequest::new(request.method().as_str(), uri, headers, SignableBody::Bytes(body))
        .map_err(|e| SigningFailed(e.to_string()))?;
    let (instructions, _signature) = sign(signable, &params)
        .map_err(|e| SigningFailed(e.to_string()))?
        .into_parts();
    instructions.apply_to_request_http1x(request);
    // Never logged, as no provider credential is (the session token already is sensitive).
    if let Some(value) = request.headers_mut().get_mut(hyper::header::AUTHORIZATION) {
        value.set_sensitive(true);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ApiKey;

    /// AWS's own example credentials, date and region: the signature is the one the AWS SDKs
    /// compute for the same request (checked against botocore).
    #[test]
    fn requests_are_signed_for_bedrock_with_the_session_token() {
        let aws = AwsSigning {
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: ApiKey::new("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into()),
            session_token: Some(ApiKey::new("session".into())),
            region: "us-east-1".into(),
        };
        let body = br#"{"messages":[]}"#;
        let mut request = hyper::Request::builder()
            .method("POST")
            .uri("https://bedrock-runtime.us-east-1.amazonaws.com/model/anthropic.claude-3-haiku-20240307-v1%3A0/converse")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(body)))
            .unwrap();
        let time = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_440_938_160);
        sign_request(&mut request, body, &aws, time).unwrap();
        let headers = request.headers();
        assert_eq!(headers["x-amz-date"], "20150830T123600Z");
        assert_eq!(headers["x-amz-security-token"], "session");
        assert_eq!(
            headers["authorization"],
            "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/bedrock/aws4_request, \
             SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, \
             Signature=2c578c770b981929fd750f3053e99ca34ea868aa233d69239dc511dc5fb5e51b"
        );
        assert!(headers["authorization"].is_sensitive());
    }
}
