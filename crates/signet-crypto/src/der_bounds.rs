//! Refuses DER whose declared lengths overrun the bytes that enclose them, before `der` sees it.
//!
//! Why: `der` 0.7 decodes owned primitives (`Any`, `OctetString`, `BitString`, `String`,
//! `BmpString`) with `vec![0; declared_length]` and only then checks that the bytes are there. A
//! 267-byte OCSP request whose algorithm parameters declare 0x0FFF_FFFF bytes therefore costs a
//! 256 MiB allocation before it is refused: an amplification anyone can repeat. Constructed values
//! are checked by `der` itself (nested readers), so the gap is exactly the primitives. One linear,
//! iterative walk over the tag-length headers closes it: after it, no declared length exceeds what
//! its parent still holds, so no allocation `der` makes can exceed the input.
//!
//! The same walk bounds the other cost `der` pays out of proportion to the input: it puts the
//! elements of every `SET OF` it decodes in order with an insertion sort, pairwise comparisons of
//! decoded values. A 16 KiB OCSP request naming its requestor by 1,450 distinct attributes in one
//! RDN, in reverse order, cost 0.75 s of CPU to refuse. Sets in the data Signet reads hold a
//! handful of elements (an RDN's attributes, an attribute's values, a CMS's certificates), so the
//! walk allows [`MAX_SET_PAIRS`] element pairs over all sets of one input, and refuses past it.
//!
//! Every decode of bytes from outside goes through [`decode`]; bytes Signet made itself may too
//! (the walk costs a few nanoseconds per header).

use der::{Decode, ErrorKind, Length};

/// The longest length field accepted: four bytes, as `der`'s own `Length` is below 256 MiB.
const MAX_LENGTH_OCTETS: usize = 4;

/// The longest high-tag-number field accepted (base-128 octets after the first tag byte); `der`
/// itself takes tag numbers below 2^14 at most.
const MAX_TAG_NUMBER_OCTETS: usize = 4;

/// How many element pairs all the sets of one input may hold together (a set of n elements holds
/// n(n-1)/2): one set of 128 elements, or 32 of 23, and so on. Each pair is at most one comparison
/// in `der`'s sort, so this bounds the sorting of one input to a few milliseconds; real sets are
/// far below it (a certificate set of 20 holds 190 pairs).
pub const MAX_SET_PAIRS: usize = 8_128;

/// Checks every tag-length header of `der` (and of everything nested in constructed values) and
/// refuses the first whose declared length is longer than the bytes its parent has left, or
/// whose header is itself cut short, indefinite or oversized; and refuses sets holding more than
/// [`MAX_SET_PAIRS`] element pairs together. Primitive contents are not looked into: whoever
/// decodes the DER inside an OCTET STRING later calls [`decode`] on it again.
///
/// Linear in the input, no recursion: the stack of enclosing values grows by one entry per
/// constructed header, two bytes of input at least.
pub fn check(der: &[u8]) -> der::Result<()> {
    let mut enclosing = vec![Enclosing {
        end: der.len(),
        may_be_a_set: false,
        elements: 0,
    }];
    let mut set_pairs = 0usize;
    let mut position = 0usize;
    loop {
        while enclosing.last().is_some_and(|value| value.end == position) {
            enclosing.pop();
        }
        let Some(parent) = enclosing.last_mut() else {
            return Ok(());
        };
        let end = parent.end;
        if parent.may_be_a_set {
            // The new element pairs with each one before it.
            set_pairs += parent.elements;
            if set_pairs > MAX_SET_PAIRS {
                return Err(der::Error::new(ErrorKind::Overlength, length(position)));
            }
        }
        parent.elements += 1;
        let header = Header::read(der, position, end)?;
        let content_start = position + header.header_len;
        if header.content_len > end - content_start {
            return Err(der::Error::new(
                ErrorKind::Incomplete {
                    expected_len: length(content_start.saturating_add(header.content_len)),
                    actual_len: length(end),
                },
                length(position),
            ));
        }
        if header.constructed {
            enclosing.push(Enclosing {
                end: content_start + header.content_len,
                may_be_a_set: header.may_be_a_set,
                elements: 0,
            });
            position = content_start;
        } else {
            position = content_start + header.content_len;
        }
    }
}

/// A constructed value being walked: where it ends, and how many elements it has shown so far.
struct Enclosing {
    end: usize,
    /// A universal SET, or a tagged value that may be an implicitly tagged one (CMS's
    /// `[0] IMPLICIT CertificateSet`, `[0] IMPLICIT SignedAttributes`); an explicit tag holds one
    /// element, so counting it costs nothing.
    may_be_a_set: bool,
    elements: usize,
}

/// [`check`], then `T::from_der`: the decode to use for bytes that came from outside.
pub fn decode<'a, T: Decode<'a>>(der: &'a [u8]) -> der::Result<T> {
    check(der)?;
    T::from_der(der)
}

/// One tag-length header: how long it is, whether its value holds further headers, and the
/// length it declares.
struct Header {
    header_len: usize,
    constructed: bool,
    /// Universal SET (tag 17), or any class but universal (whose tags may be implicit).
    may_be_a_set: bool,
    content_len: usize,
}

impl Header {
    /// Reads the header at `start`, which must end before `end` (the enclosing value's end).
    fn read(der: &[u8], start: usize, end: usize) -> der::Result<Self> {
        let cut_short = |at: usize| {
            der::Error::new(
                ErrorKind::Incomplete {
                    expected_len: length(at.saturating_add(1)),
                    actual_len: length(end),
                },
                length(at),
            )
        };
        let mut at = start;
        let byte_at = |at: usize| {
            if at < end {
                Ok(der[at])
            } else {
                Err(cut_short(at))
            }
        };
        let first_tag_byte = byte_at(at)?;
        at += 1;
        if first_tag_byte & 0x1f == 0x1f {
            // High tag number: base-128 octets, the last one with its top bit clear.
            let mut octets = 0;
            loop {
                let octet = byte_at(at)?;
                at += 1;
                octets += 1;
                if octets > MAX_TAG_NUMBER_OCTETS {
                    return Err(der::Error::new(ErrorKind::TagNumberInvalid, length(start)));
                }
                if octet & 0x80 == 0 {
                    break;
                }
            }
        }
        let first_length_byte = byte_at(at)?;
        at += 1;
        let content_len = match first_length_byte {
            short if short < 0x80 => usize::from(short),
            0x80 => return Err(der::Error::new(ErrorKind::IndefiniteLength, length(start))),
            long => {
                let octets = usize::from(long & 0x7f);
                if octets > MAX_LENGTH_OCTETS {
                    return Err(der::Error::new(ErrorKind::Overlength, length(start)));
                }
                let mut declared = 0usize;
                for _ in 0..octets {
                    declared = (declared << 8) | usize::from(byte_at(at)?);
                    at += 1;
                }
                declared
            }
        };
        Ok(Self {
            header_len: at - start,
            constructed: first_tag_byte & 0x20 != 0,
            may_be_a_set: first_tag_byte == 0x31 || first_tag_byte & 0xc0 != 0,
            content_len,
        })
    }
}

/// A position or size as `der` reports it (saturating: error positions only).
fn length(value: usize) -> Length {
    Length::try_from(value).unwrap_or(Length::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use der::asn1::{Any, OctetString, SequenceOf};
    use der::Encode;
    use proptest::prelude::*;

    /// The OCSP request the fuzzer found: a CertID's hash algorithm whose parameters (an `Any`)
    /// declare 0x0FFF_FFFF bytes inside a 13-byte AlgorithmIdentifier.
    const OCSP_LENGTH_BOMB: &str = "MIIBBjCCAQIwgdowazBpMA0GCWCGSAUBBAECZQMABCBwwbRMk4PtpsJFxbXotVkXa/N5DRVK5f+J0mBJfe9rPwQg7Mn1Y361e8oTAeU7iSVq3kuoDhcilEnEvz6UYFepF4wCFBsnDoy5dLcPHO3uH0TyRLrnswB8MGswaTANBgUAAAABZTCED////wQgbVWgkKNSjvhuGB5qnI6R86pe4ODKidW3f/8UlZGTMnEEIOzJ9WN+tnvKEwHlO4klat5LqA4XIpRJxL8+lGBXjBepAhQVnX3/////////ALWgMe3LRwBE1GCiIzEhEB8GCSsGAQUFBzABAgQSBBCqka2RcDCTnv0iFU4Qn/Sb";

    fn ocsp_length_bomb() -> Vec<u8> {
        use base64::Engine;
        base64::engine::general_purpose::STANDARD
            .decode(OCSP_LENGTH_BOMB)
            .unwrap()
    }

    #[test]
    fn the_ocsp_length_bomb_is_refused_where_its_length_overruns() {
        let bomb = ocsp_length_bomb();
        let error = check(&bomb).unwrap_err();
        assert!(
            matches!(error.kind(), ErrorKind::Incomplete { .. }),
            "{error}"
        );
        // The offending header is the parameters' `30 84 0F FF FF FF`.
        let at = usize::try_from(u32::from(error.position().unwrap())).unwrap();
        assert_eq!(&bomb[at..at + 6], &[0x30, 0x84, 0x0f, 0xff, 0xff, 0xff]);
        assert!(decode::<Any>(&bomb).is_err());
    }

    /// A SET of `count` distinct INTEGERs under `tag`, in descending order (the sort's worst case).
    fn set_of_integers(tag: u8, count: usize) -> Vec<u8> {
        let mut content = Vec::new();
        for value in (0..count).rev() {
            content.extend_from_slice(&[0x02, 0x02, 0x01 + (value >> 8) as u8, value as u8]);
        }
        tlv(tag, &content)
    }

    /// A tag-length-value with the shortest length field, as DER wants it.
    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let mut der = vec![tag];
        der.extend_from_slice(
            &der::Length::try_from(content.len())
                .unwrap()
                .to_der()
                .unwrap(),
        );
        der.extend_from_slice(content);
        der
    }

    #[test]
    fn sets_may_hold_so_many_element_pairs_together_and_no_more() {
        // One set of 128 elements holds 8,128 pairs: the limit.
        assert!(check(&set_of_integers(0x31, 128)).is_ok());
        let error = check(&set_of_integers(0x31, 129)).unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Overlength, "{error}");
        // The budget is for the whole input: two sets of 91 (4,095 pairs each) are too many.
        let sets = [set_of_integers(0x31, 91), set_of_integers(0x31, 91)].concat();
        assert!(check(&tlv(0x30, &sets)).is_err());
        // An implicitly tagged set counts the same; a SEQUENCE OF is never sorted.
        assert!(check(&set_of_integers(0xa0, 129)).is_err());
        assert!(check(&set_of_integers(0x30, 10_000)).is_ok());
        // And the decoder refuses it too, before sorting anything.
        assert!(
            decode::<der::asn1::SetOfVec<der::asn1::Int>>(&set_of_integers(0x31, 129)).is_err()
        );
        let sorted: der::asn1::SetOfVec<der::asn1::Int> =
            decode(&set_of_integers(0x31, 128)).unwrap();
        assert_eq!(sorted.len(), 128);
    }

    #[test]
    fn the_ocsp_requestor_with_400_attributes_in_reverse_order_is_refused_unsorted() {
        // 4.5 KB: 47 ms of sorting before (0.75 s for the 16 KiB version), refused by the walk now.
        let slow = include_bytes!(
            "../../../fuzz/regressions/ocsp_request/slow-rdn-of-400-attributes-in-reverse"
        );
        assert_eq!(check(slow).unwrap_err().kind(), ErrorKind::Overlength);
    }

    #[test]
    fn a_primitive_may_not_declare_more_than_its_parent_holds() {
        // SEQUENCE (3 bytes) { OCTET STRING declaring 5 bytes, 1 present }
        assert!(check(&[0x30, 0x03, 0x04, 0x05, 0xaa]).is_err());
        // The same with the SEQUENCE long enough on the outside but not on the inside.
        assert!(check(&[0x30, 0x03, 0x04, 0x02, 0xaa, 0xbb]).is_err());
        assert!(check(&[0x30, 0x04, 0x04, 0x02, 0xaa, 0xbb]).is_ok());
    }

    #[test]
    fn headers_cut_short_indefinite_or_oversized_are_refused() {
        for bytes in [
            &[0x30][..],
            &[0x30, 0x81],
            &[0x1f],
            &[0x1f, 0x81, 0x81, 0x81, 0x81, 0x01, 0x00],
            &[0x30, 0x80, 0x00, 0x00],
            &[0x04, 0x85, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00],
            &[0x30, 0x02, 0x04],
        ] {
            assert!(check(bytes).is_err(), "{bytes:02x?}");
        }
        assert!(check(&[]).is_ok(), "empty input is left to the decoder");
        assert!(check(&[0x1f, 0x81, 0x01, 0x00]).is_ok(), "high tag numbers");
        assert!(check(&[0x30, 0x00, 0x05, 0x00]).is_ok(), "several values");
    }

    #[test]
    fn deep_nesting_is_walked_without_recursion() {
        let depth = 100_000;
        let mut der = Vec::new();
        for _ in 0..depth {
            der.extend_from_slice(&[0x30, 0x80]); // indefinite: refused at the first header
        }
        assert!(check(&der).is_err());
        // The same depth, well formed: each SEQUENCE declares exactly what follows it.
        let mut well_formed = Vec::with_capacity(depth * 6 + 2);
        for level in 0..depth {
            let inner = 2 + 6 * (depth - 1 - level);
            well_formed.extend_from_slice(&[0x30, 0x84]);
            well_formed.extend_from_slice(&u32::try_from(inner).unwrap().to_be_bytes());
        }
        well_formed.extend_from_slice(&[0x05, 0x00]);
        assert!(check(&well_formed).is_ok());
    }

    /// A tree of nested SEQUENCEs and OCTET STRINGs, as `der` would encode it.
    fn tree() -> impl Strategy<Value = Vec<u8>> {
        let leaf = proptest::collection::vec(any::<u8>(), 0..300)
            .prop_map(|bytes| OctetString::new(bytes).unwrap().to_der().unwrap());
        leaf.prop_recursive(4, 64, 8, |inner| {
            proptest::collection::vec(inner, 0..8).prop_map(|children| {
                let mut sequence = SequenceOf::<Any, 8>::new();
                for child in children {
                    sequence.add(Any::from_der(&child).unwrap()).unwrap();
                }
                sequence.to_der().unwrap()
            })
        })
    }

    proptest! {
        #[test]
        fn never_panics_on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = check(&bytes);
        }

        #[test]
        fn whatever_der_encodes_passes(der in tree()) {
            prop_assert!(check(&der).is_ok());
        }

        #[test]
        fn no_strict_prefix_of_an_encoding_passes(der in tree(), cut in any::<prop::sample::Index>()) {
            let prefix = &der[..cut.index(der.len())];
            prop_assert!(prefix.is_empty() || check(prefix).is_err());
        }
    }
}
