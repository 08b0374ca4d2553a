//! State queries with proofs, blocks, certified headers and status, checked the way a client
//! checks them: with ledger-core alone, trusting only the genesis.

mod api_common;
mod store_common;
use api_common::*;
use axum::http::StatusCode;
use ledger_core::block::CommitCertificate;
use ledger_core::crypto::Digest;
use ledger_core::genesis::{validator_set_hash, Genesis, Validator};
use ledger_core::receipt::{verify_certified_header, CertifiedHeader, ValidatorChange};
use ledger_core::state::StateKey;
use ledger_core::state_tree::StateProof;
use ledger_core::testkit::{test_key, TestChain};
use serde_json::Value;

/// What a client does with a state answer: checks the header's certificate against the genesis
/// and the validator changes, then the proof of the raw value (or of absence) against the
/// header's state root. Returns the proven value bytes.
fn client_check(genesis: &Genesis, answer: &Value) -> Result<Option<Vec<u8>>, String> {
    let certified: CertifiedHeader =
        serde_json::from_value(answer["certified_header"].clone()).map_err(|e| e.to_string())?;
    let changes: Vec<ValidatorChange> =
        serde_json::from_value(answer["validator_changes"].clone()).map_err(|e| e.to_string())?;
    let header =
        verify_certified_header(genesis, &changes, &certified).map_err(|e| e.to_string())?;
    if header.height != answer["height"].as_u64().unwrap() {
        return Err("the answer's height is not the certified header's".into());
    }
    let proof: StateProof =
        serde_json::from_value(answer["proof"].clone()).map_err(|e| e.to_string())?;
    let key = hex::decode(answer["key"].as_str().unwrap()).map_err(|e| e.to_string())?;
    let value = match &answer["value_hex"] {
        Value::Null => None,
        text => Some(hex::decode(text.as_str().unwrap()).map_err(|e| e.to_string())?),
    };
    proof
        .verify(&header.state_root, &key, value.as_deref())
        .map_err(|e| e.to_string())?;
    Ok(value)
}

#[tokio::test]
async fn a_state_answer_verifies_client_side_and_tampering_fails() {
    let harness = Harness::busy();
    let genesis = &harness.chain.genesis;
    let song = Digest::sha256(b"song");
    let (status, answer) = harness.get(&format!("/v1/works/{song}")).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["height"], 3);
    assert_eq!(answer["value"]["owner"], "alice");
    assert_eq!(
        answer["value"]["active_pledges"].as_array().unwrap().len(),
        1
    );
    let value = client_check(genesis, &answer).expect("the answer verifies");
    let key = StateKey::Asset(work("song")).encode();
    assert_eq!(answer["key"], hex::encode(&key));
    assert_eq!(
        value,
        harness
            .store
            .snapshot()
            .unwrap()
            .state(3)
            .get(&key)
            .unwrap()
    );

    // A value changed in one byte no longer matches the proof.
    let mut tampered = answer.clone();
    let mut bytes = value.clone().unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    tampered["value_hex"] = Value::String(hex::encode(&bytes));
    let error = client_check(genesis, &tampered).unwrap_err();
    assert!(error.contains("value hash"), "{error}");
    // Claiming the key holds nothing fails too.
    let mut tampered = answer.clone();
    tampered["value_hex"] = Value::Null;
    assert!(client_check(genesis, &tampered).is_err());
    // So does a proof for another key.
    let mut tampered = answer.clone();
    tampered["key"] = Value::String(hex::encode(StateKey::Asset(work("novel")).encode()));
    assert!(client_check(genesis, &tampered).is_err());
    // And a header whose state root was replaced: its certificate no longer signs it.
    let mut tampered = answer.clone();
    tampered["certified_header"]["header"]["state_root"] =
        Value::String(Digest::sha256(b"forged").to_string());
    let error = client_check(genesis, &tampered).unwrap_err();
    assert!(error.contains("certificate"), "{error}");
}

#[tokio::test]
async fn absence_is_proven_too() {
    let harness = Harness::busy();
    let unknown = Digest::sha256(b"never registered");
    let (status, answer) = harness.get(&format!("/v1/works/{unknown}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["value"], Value::Null);
    assert_eq!(answer["value_hex"], Value::Null);
    assert_eq!(client_check(&harness.chain.genesis, &answer), Ok(None));
    let mut tampered = answer.clone();
    tampered["value_hex"] = Value::String("00".into());
    assert!(client_check(&harness.chain.genesis, &tampered).is_err());
}

#[tokio::test]
async fn every_friendly_route_reads_its_key_and_matches_the_raw_key_route() {
    let harness = Harness::busy();
    let genesis = &harness.chain.genesis;
    let pledge = harness.chain.blocks[2].txs[0].id();
    let exhibit = Digest::sha256(b"exhibit-1");
    let song = work("song");
    let cases: Vec<(String, StateKey)> = vec![
        (
            format!(
                "/v1/works/{}",
                hex::encode(Digest::sha256(b"film").as_bytes())
            ),
            StateKey::Asset(work("film")),
        ),
        (format!("/v1/assets/{song}"), StateKey::Asset(song.clone())),
        (
            "/v1/assets/patent:CNIPA:ZL1".into(),
            StateKey::Asset(patent("ZL1")),
        ),
        (format!("/v1/pledges/{pledge}"), StateKey::Pledge(pledge)),
        (
            format!("/v1/evidence/{exhibit}"),
            StateKey::Evidence(exhibit),
        ),
        ("/v1/parties/alice".into(), StateKey::Party("alice".into())),
    ];
    for (uri, key) in cases {
        let (status, answer) = harness.get(&uri).await;
        assert_eq!(status, StatusCode::OK, "{uri}: {answer}");
        assert_ne!(answer["value"], Value::Null, "{uri}");
        assert!(client_check(genesis, &answer).unwrap().is_some(), "{uri}");
        assert_eq!(answer["key"], hex::encode(key.encode()), "{uri}");
        let raw = format!("/v1/state/{}", hex::encode(key.encode()));
        let (status, by_key) = harness.get(&raw).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(by_key, answer, "{raw} and {uri} differ");
    }
    let (_, patent) = harness.get("/v1/assets/patent:CNIPA:ZL1").await;
    assert_eq!(patent["value"]["owner"], "bob");
    let (_, pledge) = harness.get(&format!("/v1/pledges/{pledge}")).await;
    assert_eq!(pledge["value"]["status"], "active");
    assert_eq!(pledge["value"]["pledgee"], "bank-a");
    let (_, evidence) = harness.get(&format!("/v1/evidence/{exhibit}")).await;
    assert_eq!(evidence["value"]["first_attestor"], "court");
    let (_, party) = harness.get("/v1/parties/alice").await;
    assert_eq!(party["value"]["role"], "rights_holder");
    // Keys without a friendly route decode by their kind too.
    let key = StateKey::PartyByKey(test_key("alice").public_key());
    let (_, answer) = harness
        .get(&format!("/v1/state/{}", hex::encode(key.encode())))
        .await;
    assert_eq!(answer["value"], "alice");
    let (_, answer) = harness
        .get(&format!(
            "/v1/state/{}",
            hex::encode(StateKey::Chain.encode())
        ))
        .await;
    assert_eq!(answer["value"]["chain_id"], genesis.chain_id.as_str());
}

#[tokio::test]
async fn bad_parameters_answer_400() {
    let harness = Harness::busy();
    for uri in [
        "/v1/state/zz",
        "/v1/state/ffffffff",
        "/v1/works/sha256:1234",
        "/v1/assets/copyright:X:1",
        "/v1/assets/patent:CNIPA",
        "/v1/pledges/nope",
        "/v1/evidence/sha256:",
        "/v1/parties/Not%20A%20Party",
        "/v1/blocks/0",
        "/v1/blocks/two",
        "/v1/headers/-1",
    ] {
        let (status, answer) = harness.get(uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {answer}");
        assert_eq!(code(&answer), "invalid_parameter", "{uri}");
    }
}

/// A path segment whose percent-encoding is not UTF-8 (found by the `http_request` fuzz target)
/// gets the API's JSON error on every route, not axum's plain-text refusal.
#[tokio::test]
async fn a_path_segment_that_is_not_utf8_answers_400_invalid_parameter() {
    let harness = Harness::busy();
    for route in [
        "/v1/transactions/{}",
        "/v1/transactions/{}/receipt",
        "/v1/blocks/{}",
        "/v1/headers/{}",
        "/v1/state/{}",
        "/v1/works/{}",
        "/v1/assets/{}",
        "/v1/pledges/{}",
        "/v1/evidence/{}",
        "/v1/parties/{}",
    ] {
        let uri = route.replace("{}", "%ce");
        let (status, answer) = harness.get(&uri).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{uri}: {answer}");
        assert_eq!(code(&answer), "invalid_parameter", "{uri}: {answer}");
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("UTF-8"), "{uri}: {message}");
    }
}

#[tokio::test]
async fn blocks_and_certified_headers() {
    let harness = Harness::busy();
    let chain = &harness.chain;
    let (status, answer) = harness.get("/v1/blocks/2").await;
    assert_eq!(status, StatusCode::OK);
    let block: ledger_core::block::Block = serde_json::from_value(answer["block"].clone()).unwrap();
    assert_eq!(block, chain.blocks[1]);
    assert_eq!(answer["hash"], block.header.hash().to_string());
    let certificate: CommitCertificate =
        serde_json::from_value(answer["certificate"].clone()).unwrap();
    assert_eq!(certificate, chain.certificates[1]);

    let (status, answer) = harness.get("/v1/headers/2").await;
    assert_eq!(status, StatusCode::OK);
    let certified: CertifiedHeader = serde_json::from_value(answer).unwrap();
    assert_eq!(certified.header, chain.blocks[1].header);
    verify_certified_header(&chain.genesis, &[], &certified).expect("certified");

    let (status, answer) = harness.get("/v1/headers/latest").await;
    assert_eq!(status, StatusCode::OK);
    let latest: CertifiedHeader = serde_json::from_value(answer).unwrap();
    assert_eq!(latest.header, chain.blocks[2].header);

    for uri in ["/v1/blocks/4", "/v1/headers/4"] {
        let (status, answer) = harness.get(uri).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{uri}");
        assert_eq!(code(&answer), "not_found");
    }
}

#[tokio::test]
async fn status_reports_the_head_validators_and_mempool() {
    let mut harness = Harness::busy();
    let tx = register_work(&mut harness.chain, "pending", "bob");
    assert_eq!(harness.submit(&tx, "").await.0, StatusCode::ACCEPTED);
    let (status, answer) = harness.get("/v1/status").await;
    assert_eq!(status, StatusCode::OK);
    let chain = &harness.chain;
    let head = &chain.blocks[2].header;
    assert_eq!(answer["chain_id"], chain.genesis.chain_id.as_str());
    assert_eq!(answer["genesis_hash"], chain.genesis.hash().to_string());
    assert_eq!(answer["height"], 3);
    assert_eq!(answer["head_hash"], head.hash().to_string());
    assert_eq!(answer["head_time_ms"], head.time_ms);
    assert_eq!(answer["state_root"], head.state_root.to_string());
    assert_eq!(answer["ledger_size"], 8);
    let validators: Vec<Validator> = serde_json::from_value(answer["validators"].clone()).unwrap();
    assert_eq!(validators, chain.genesis.validators);
    assert_eq!(
        answer["validator_set_hash"],
        validator_set_hash(&validators).to_string()
    );
    assert_eq!(answer["mempool_size"], 1);
}

#[tokio::test]
async fn before_the_first_block_state_is_not_yet_certified() {
    let harness = Harness::new(TestChain::new(1));
    let (status, answer) = harness.get("/v1/parties/bank-a").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(code(&answer), "no_certified_state");
    let (status, _) = harness.get("/v1/headers/latest").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, answer) = harness.get("/v1/status").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["height"], 0);
    assert_eq!(
        answer["head_hash"],
        harness.chain.genesis.hash().to_string()
    );
    assert_eq!(
        answer["head_time_ms"],
        harness.chain.genesis.genesis_time_ms
    );
}

#[tokio::test]
async fn state_answers_verify_across_a_validator_set_change() {
    let mut chain = TestChain::new(4);
    let (validators, effective_height) = ledger_core::testkit::add_bank_c_validator(&mut chain);
    while chain.height() < effective_height + 1 {
        chain.commit(Vec::new());
    }
    let harness = Harness::new(chain);
    let (status, answer) = harness.get("/v1/parties/bank-c").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["validator_changes"].as_array().unwrap().len(), 1);
    assert!(client_check(&harness.chain.genesis, &answer)
        .unwrap()
        .is_some());
    // Without the change, the head's certificate is signed by a set the genesis does not know.
    let mut tampered = answer.clone();
    tampered["validator_changes"] = Value::Array(Vec::new());
    assert!(client_check(&harness.chain.genesis, &tampered).is_err());
    let (_, status) = harness.get("/v1/status").await;
    let current: Vec<Validator> = serde_json::from_value(status["validators"].clone()).unwrap();
    assert_eq!(current, validators);
}
