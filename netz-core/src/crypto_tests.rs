//! Unit tests of `crypto`: tokens, the key schedule, sealing.
use super::*;

fn issuer() -> TokenIssuer {
    TokenIssuer::new(&[7u8; 32], 42)
}

fn grant(expires: u64) -> TokenGrant {
    TokenGrant {
        client_id: 9,
        process_type: ProcessType::Client,
        expires_at_ms: expires,
        session: 0,
        address: None,
    }
}

#[test]
fn tokens_open_and_expire() {
    let i = issuer();
    let t = i.issue(&grant(1000), [3u8; 24]);
    assert_eq!(t.sealed.len(), SEALED_TOKEN_LEN);
    let (g, c2s, s2c) = i.open(&t.sealed, 999).unwrap();
    assert_eq!(g, grant(1000));
    assert_eq!((c2s, s2c), (t.client_to_server, t.server_to_client));
    assert_ne!(c2s, s2c);
    assert_eq!(i.open(&t.sealed, 1000), Err(TokenError::Expired));
    let mut bad = t.sealed.clone();
    bad[40] ^= 1;
    assert_eq!(i.open(&bad, 0), Err(TokenError::Invalid));
    assert_eq!(
        TokenIssuer::new(&[7u8; 32], 43).open(&t.sealed, 0),
        Err(TokenError::Invalid)
    );
    assert_eq!(
        TokenIssuer::new(&[8u8; 32], 42).open(&t.sealed, 0),
        Err(TokenError::Invalid)
    );
    let other = i.issue(&grant(1000), [4u8; 24]);
    assert_ne!(other.client_to_server, t.client_to_server);
}

#[test]
fn a_token_carries_its_session_and_address() {
    let i = issuer();
    let addr: SocketAddr = "[2001:db8::7]:4000".parse().unwrap();
    let g = grant(1000).for_session(55).from_address(addr);
    let t = i.issue(&g, [6u8; 24]);
    assert_eq!(t.sealed.len(), SEALED_TOKEN_LEN);
    assert_eq!(i.open(&t.sealed, 0).unwrap().0, g);
    let v4: SocketAddr = "10.1.2.3:9".parse().unwrap();
    let g4 = grant(1000).from_address(v4);
    assert_eq!(i.open(&i.issue(&g4, [7u8; 24]).sealed, 0).unwrap().0, g4);
    // A station of another session refuses it; one of the same accepts.
    let mut st = SecurityState::new(SecurityConfig::authority([7u8; 32], 42), 1);
    assert_eq!(
        st.open_token(&t.sealed, ProcessType::Client, Instant::ZERO)
            .err(),
        Some(TokenError::WrongSession)
    );
    st.cfg.session_id = 55;
    assert!(st
        .open_token(&t.sealed, ProcessType::Client, Instant::ZERO)
        .is_ok());
    // Once spent, it is known as spent until it expires.
    assert!(!st.spent(&t.sealed));
    st.spend_token(&t.sealed, 1000, Instant::ZERO);
    assert!(st.spent(&t.sealed));
    assert_eq!(st.spent_tokens(), 1);
    let later = Instant::from_micros(2_000_000);
    st.spend_token(&i.issue(&grant(5000), [8u8; 24]).sealed, 5000, later);
    assert_eq!(st.spent_tokens(), 1, "the expired one is forgotten");
}

#[test]
fn two_joins_with_one_token_share_no_key() {
    let i = issuer();
    let t = i.issue(&grant(1000), [5u8; 24]);
    let mut seen = std::collections::BTreeSet::new();
    // The same joiner seed (a restart), the same id in two sessions,
    // the same master seed: the other side's salt still differs.
    for (joiner_seed, master_seed, id) in [(2, 1, 5), (2, 1, 5), (2, 3, 5), (4, 1, 6)] {
        let mut master = SecurityState::new(SecurityConfig::authority([7u8; 32], 42), master_seed);
        let mut joiner = SecurityState::new(SecurityConfig::joiner(t.clone(), 42), joiner_seed);
        for _ in 0..seen.len() {
            // A master that admitted others before.
            master.fresh_salt();
        }
        joiner.set_joining(true);
        let (g, c2s, s2c) = master
            .open_token(&t.sealed, ProcessType::Client, Instant::ZERO)
            .unwrap();
        let mix = JoinMix {
            joiner_salt: joiner.join_salt(),
            master_salt: [0; 16],
            session_tag: 77,
            joiner: StationId(id),
            session_id: 0,
        };
        master.remember_joiner(mix, 1, c2s, s2c, g.client_id);
        let jk = master.join_keys_for(StationId(id)).unwrap();
        assert!(joiner.accept_join_keys(1, &jk).is_some());
        joiner.derive_own(StationId(1));
        let (send, recv) = master.link_keys_for(StationId(id), StationId(1)).unwrap();
        let fps = joiner.key_fingerprints();
        assert_eq!(fps[0].1, key_fingerprint(&recv), "the two sides agree");
        assert_eq!(fps[0].2, key_fingerprint(&send));
        assert!(
            seen.insert(fps[0].1) && seen.insert(fps[0].2),
            "a key came back"
        );
    }
}

#[test]
fn replay_window() {
    let mut w = ReplayWindow::default();
    for c in [5u64, 3, 4, 300, 299, 100] {
        assert!(w.check(c), "{c}");
        w.mark(c);
        assert!(!w.check(c), "{c}");
    }
    assert!(!w.check(40), "too old");
    assert!(w.check(298));
    w.mark(1000);
    assert!(!w.check(300));
    assert!(w.check(999));
    for c in 1001..1400 {
        w.mark(c);
    }
    assert!(!w.check(1399));
    assert!(w.check(1400));
    assert!(!w.check(1399 - 255));
    assert!(!w.check(1399 - 256));
}

#[test]
fn datagrams_seal_open_and_refuse_tampering() {
    let i = issuer();
    let t = i.issue(&grant(1000), [5u8; 24]);
    let mut master = SecurityState::new(SecurityConfig::authority([7u8; 32], 42), 1);
    let mut joiner = SecurityState::new(SecurityConfig::joiner(t.clone(), 42), 2);
    let (g, c2s, s2c) = master
        .open_token(&t.sealed, ProcessType::Client, Instant::ZERO)
        .unwrap();
    joiner.set_joining(true);
    let mix = JoinMix {
        joiner_salt: joiner.join_salt(),
        master_salt: [0; 16],
        session_tag: 77,
        joiner: StationId(5),
        session_id: 0,
    };
    master.remember_joiner(mix, 99, c2s, s2c, g.client_id);
    let join_keys = master.join_keys_for(StationId(5)).unwrap();
    assert_eq!(join_keys.len(), JOIN_KEYS_LEN);
    // Only for this join's request, and only unmodified.
    assert_eq!(joiner.accept_join_keys(98, &join_keys), None);
    let mut bad = join_keys.clone();
    bad[30] ^= 1;
    assert_eq!(joiner.accept_join_keys(99, &bad), None);
    assert_eq!(
        joiner.accept_join_keys(99, &join_keys),
        Some((StationId(5), 77))
    );
    let (send, recv) = master.link_keys_for(StationId(5), StationId(1)).unwrap();
    master.install(StationId(5), &send, &recv);
    let header = [0x4E, crate::transport::PROTOCOL_VERSION, 0, 9, 1, 0];
    let mut d = header.to_vec();
    d.extend_from_slice(b"hello");
    assert!(master.seal(StationId(5), &mut d, header.len()));
    let body = d[header.len()..].to_vec();
    assert_eq!(joiner.open(StationId(1), &header, &body).unwrap(), b"hello");
    assert_eq!(
        joiner.open(StationId(1), &header, &body),
        Err(OpenError::Replayed)
    );
    let mut d = header.to_vec();
    d.extend_from_slice(b"second");
    assert!(master.seal(StationId(5), &mut d, header.len()));
    let body = d[header.len()..].to_vec();
    let mut flipped = body.clone();
    flipped[10] ^= 0x20;
    assert_eq!(
        joiner.open(StationId(1), &header, &flipped),
        Err(OpenError::Unauthentic)
    );
    let mut other_header = header;
    other_header[3] = 8;
    assert_eq!(
        joiner.open(StationId(1), &other_header, &body),
        Err(OpenError::Unauthentic)
    );
    assert_eq!(
        joiner.open(StationId(1), &header, &body).unwrap(),
        b"second"
    );
    // And back.
    let mut d = header.to_vec();
    d.extend_from_slice(b"ack");
    assert!(joiner.seal(StationId(1), &mut d, header.len()));
    assert_eq!(
        master
            .open(StationId(5), &header, &d[header.len()..])
            .unwrap(),
        b"ack"
    );
    assert_eq!(
        master.open(StationId(6), &header, &d[header.len()..]),
        Err(OpenError::Unauthentic)
    );
}
