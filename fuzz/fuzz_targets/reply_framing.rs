//! Raw reply bytes → the client's reply scanner (`frame_len`), checked against the `redis`
//! crate's decoder and the router's `parse_resp`.
//!
//! Input: two bytes choosing a split point (little-endian), then the bytes a server sent.
//!
//! Properties: nothing panics. When `frame_len` finds a frame of `n` bytes, every proper prefix
//! of it is incomplete (never an error), and if `redis::parse_redis_value` decodes the frame it
//! needs all `n` bytes (without the last one it fails), so the client never cuts a reply short
//! or long and stays in step with its requests. When `parse_redis_value` decodes the input,
//! `frame_len` finds a frame holding the same value, unless it refuses the input for one of
//! its own limits (nesting deeper than `MAX_REPLY_DEPTH`, a length outside `-1..=u32::MAX` or
//! not plainly written), which no server sends. `parse_resp` of the bytes cut at the split
//! point is `Incomplete`, of the whole value gives the same value, and where both it and
//! `frame_len` accept a value they agree on its length.
#![no_main]

use libfuzzer_sys::{fuzz_target, Corpus};
use slotline_client::__fuzz::frame_len;
use slotline_router::{parse_resp, RespError};

/// `redis::Value` as text: `Double(NaN)` is not equal to itself, its `Debug` is.
fn decoded(bytes: &[u8]) -> Result<String, String> {
    redis::parse_redis_value(bytes)
        .map(|v| format!("{v:?}"))
        .map_err(|e| e.to_string())
}

fuzz_target!(|input: &[u8]| -> Corpus {
    let [a, b, data @ ..] = input else {
        return Corpus::Reject;
    };
    let split = usize::from(u16::from_le_bytes([*a, *b]));
    let framed = frame_len(data);

    if let Ok(Some(n)) = framed {
        assert!(0 < n && n <= data.len(), "frame of {n} bytes in {data:?}");
        let frame = &data[..n];
        assert_eq!(frame_len(frame), Ok(Some(n)), "the frame alone, {frame:?}");
        // Every proper prefix (a sample of them for long frames, to keep runs fast).
        let stride = if n <= 1024 { 1 } else { n / 256 };
        for cut in (0..n).step_by(stride).chain([split % n, n - 1]) {
            assert_eq!(
                frame_len(&frame[..cut]),
                Ok(None),
                "prefix of {cut} bytes of the frame {frame:?}"
            );
        }
        if let Ok(value) = decoded(frame) {
            assert!(
                decoded(&frame[..n - 1]).is_err(),
                "redis decodes {value} from fewer bytes than the {n}-byte frame {frame:?}"
            );
            assert_eq!(decoded(data), Ok(value), "the frame and what follows");
        }
        // Otherwise the client decodes the frame, fails and breaks the connection: safe.
    }

    if let Ok(value) = decoded(data) {
        match framed {
            Ok(Some(n)) => assert_eq!(decoded(&data[..n]), Ok(value), "frame {n} of {data:?}"),
            Ok(None) => panic!("redis decodes {value} from {data:?}, frame_len wants more"),
            Err("reply nested too deeply" | "bad length in reply header") => {}
            Err(e) => panic!("redis decodes {value} from {data:?}, frame_len says {e}"),
        }
    }

    if let Ok((value, used)) = parse_resp(data) {
        assert!(0 < used && used <= data.len());
        let cut = split % used;
        assert_eq!(
            parse_resp(&data[..cut]),
            Err(RespError::Incomplete),
            "parse_resp of {cut} of the {used} bytes of {data:?}"
        );
        assert_eq!(parse_resp(&data[..used]), Ok((value, used)));
        if let Ok(Some(n)) = framed {
            assert_eq!(n, used, "frame_len and parse_resp disagree on {data:?}");
        }
    }
    Corpus::Keep
});
