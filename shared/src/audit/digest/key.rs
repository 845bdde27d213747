//! Trail ARNs and digest object keys: which objects are digests of which trail, and which
//! chain each belongs to.
//!
//! Pure string parsing, no I/O. A key that does not follow the digest layout exactly is not
//! a digest (the validator ignores it); nothing here fails on arbitrary input.

use std::collections::BTreeSet;
use std::fmt;

use time::{macros::format_description, OffsetDateTime, PrimitiveDateTime};

/// A trail ARN: `arn:<partition>:cloudtrail:<home-region>:<account>:trail/<name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrailArn {
    /// The trail's name (as it appears in digest file names).
    pub name: String,
    /// The region the trail was created in (the last region field of digest file names).
    pub home_region: String,
    /// The account that owns the trail.
    pub account: String,
}

/// The trail ARN does not have the `arn:<partition>:cloudtrail:<region>:<account>:trail/<name>` shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "not a trail ARN: {0:?} (expected arn:<partition>:cloudtrail:<region>:<account>:trail/<name>)"
)]
pub struct TrailArnError(pub String);

impl TrailArn {
    /// Parses a trail ARN.
    ///
    /// # Errors
    /// [`TrailArnError`] when the service is not `cloudtrail`, the resource is not
    /// `trail/<name>` or a field is empty.
    pub fn parse(arn: &str) -> Result<Self, TrailArnError> {
        let err = || TrailArnError(arn.to_owned());
        let mut parts = arn.splitn(6, ':');
        let (
            Some("arn"),
            Some(partition),
            Some("cloudtrail"),
            Some(region),
            Some(account),
            Some(resource),
        ) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        )
        else {
            return Err(err());
        };
        let name = resource.strip_prefix("trail/").ok_or_else(err)?;
        if partition.is_empty()
            || region.is_empty()
            || account.is_empty()
            || name.is_empty()
            || name.contains('/')
        {
            return Err(err());
        }
        Ok(Self {
            name: name.to_owned(),
            home_region: region.to_owned(),
            account: account.to_owned(),
        })
    }
}

/// Regular hourly digests and `_backfill` digests form separate chains.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DigestKind {
    /// An hourly digest (`..._YYYYMMDDTHHMMSSZ.json.gz`).
    Regular,
    /// A digest of late-delivered log files (`..._YYYYMMDDTHHMMSSZ_backfill.json.gz`).
    Backfill,
}

/// Identifies one digest chain: digests chain per (prefix, organization id, account,
/// delivery region, kind).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChainId {
    /// Key prefix before `AWSLogs/`, without the trailing `/` (may itself contain `/`).
    pub prefix: Option<String>,
    /// Organization id (`o-...`) of organization trails.
    pub org_id: Option<String>,
    /// The account whose activity the chain covers.
    pub account: String,
    /// The region the digests were delivered from.
    pub region: String,
    /// Regular or backfill.
    pub kind: DigestKind,
}

impl fmt::Display for ChainId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(p) = &self.prefix {
            write!(f, "{p}/")?;
        }
        if let Some(o) = &self.org_id {
            write!(f, "{o}/")?;
        }
        write!(f, "{}/{}", self.account, self.region)?;
        if self.kind == DigestKind::Backfill {
            f.write_str(" (backfill)")?;
        }
        Ok(())
    }
}

/// A parsed digest object key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestKey {
    /// The chain the digest belongs to.
    pub chain: ChainId,
    /// Trail name from the file name.
    pub trail_name: String,
    /// Trail home region from the file name.
    pub home_region: String,
    /// The key timestamp (equals the digest's `digestEndTime`).
    pub time: OffsetDateTime,
}

impl DigestKey {
    /// Parses `[prefix/]AWSLogs/[o-orgid/]<account>/CloudTrail-Digest/<region>/YYYY/MM/DD/
    /// <account>_CloudTrail-Digest_<region>_<trail>_<home-region>_YYYYMMDDTHHMMSSZ[_backfill].json.gz`.
    ///
    /// Returns `None` for anything else, including keys whose folders disagree with the
    /// file name (account, region, date).
    pub fn parse(key: &str) -> Option<Self> {
        // parse from the end: the prefix may contain `/` (and even `AWSLogs`)
        let mut segs = key.rsplit('/');
        let file = segs.next()?;
        let (day, month, year) = (segs.next()?, segs.next()?, segs.next()?);
        let region = segs.next()?;
        if segs.next()? != "CloudTrail-Digest" {
            return None;
        }
        let account = segs.next()?;
        let (org_id, awslogs) = match segs.next()? {
            org if org.starts_with("o-") && org.len() > 2 => (Some(org), segs.next()?),
            other => (None, other),
        };
        if awslogs != "AWSLogs" {
            return None;
        }
        let rest: Vec<&str> = segs.collect();
        let prefix = if rest.is_empty() {
            None
        } else {
            let p = rest.iter().rev().copied().collect::<Vec<_>>().join("/");
            if p.is_empty() {
                return None; // a leading "/" is not a prefix S3 produces
            }
            Some(p)
        };
        if account.is_empty() || !account.bytes().all(|b| b.is_ascii_digit()) || region.is_empty() {
            return None;
        }

        let stem = file.strip_suffix(".json.gz")?;
        let (stem, kind) = match stem.strip_suffix("_backfill") {
            Some(s) => (s, DigestKind::Backfill),
            None => (stem, DigestKind::Regular),
        };
        let (head, stamp) = stem.rsplit_once('_')?;
        let time = parse_key_time(stamp)?;
        let head = head
            .strip_prefix(account)?
            .strip_prefix("_CloudTrail-Digest_")?;
        let head = head.strip_prefix(region)?.strip_prefix('_')?;
        let (trail_name, home_region) = head.rsplit_once('_')?;
        if trail_name.is_empty() || home_region.is_empty() {
            return None;
        }
        let date = time.date();
        if year != format!("{:04}", date.year())
            || month != format!("{:02}", u8::from(date.month()))
            || day != format!("{:02}", date.day())
        {
            return None;
        }
        Some(Self {
            chain: ChainId {
                prefix,
                org_id: org_id.map(str::to_owned),
                account: account.to_owned(),
                region: region.to_owned(),
                kind,
            },
            trail_name: trail_name.to_owned(),
            home_region: home_region.to_owned(),
            time,
        })
    }

    /// Whether this digest belongs to `trail` (same name and home region).
    pub fn is_of_trail(&self, trail: &TrailArn) -> bool {
        self.trail_name == trail.name && self.home_region == trail.home_region
    }
}

/// The delivery regions of `trail`'s digests among `keys`: each region signs with its own
/// key, so these are the regions whose public keys (`ListPublicKeys`) are needed.
pub fn trail_digest_regions<'a>(
    keys: impl IntoIterator<Item = &'a str>,
    trail: &TrailArn,
) -> BTreeSet<String> {
    keys.into_iter()
        .filter_map(DigestKey::parse)
        .filter(|d| d.is_of_trail(trail))
        .map(|d| d.chain.region)
        .collect()
}

/// `YYYYMMDDTHHMMSSZ` (UTC).
fn parse_key_time(s: &str) -> Option<OffsetDateTime> {
    let fmt = format_description!("[year][month][day]T[hour][minute][second]Z");
    PrimitiveDateTime::parse(s, &fmt)
        .ok()
        .map(PrimitiveDateTime::assume_utc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn trail_arn_parses_name_and_home_region() {
        let t = TrailArn::parse("arn:aws:cloudtrail:us-east-1:111122223333:trail/management-trail")
            .unwrap();
        assert_eq!(t.name, "management-trail");
        assert_eq!(t.home_region, "us-east-1");
        assert_eq!(t.account, "111122223333");
        let cn =
            TrailArn::parse("arn:aws-cn:cloudtrail:cn-north-1:111122223333:trail/t_1.x").unwrap();
        assert_eq!(
            (cn.name.as_str(), cn.home_region.as_str()),
            ("t_1.x", "cn-north-1")
        );
    }

    #[test]
    fn trail_arn_rejects_other_shapes() {
        for bad in [
            "",
            "arn:aws:s3:::bucket",
            "arn:aws:cloudtrail:us-east-1:111122223333:eventdatastore/x",
            "arn:aws:cloudtrail::111122223333:trail/x",
            "arn:aws:cloudtrail:us-east-1:111122223333:trail/",
            "management-trail",
        ] {
            assert!(TrailArn::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn plain_digest_key() {
        let k = DigestKey::parse("AWSLogs/111122223333/CloudTrail-Digest/eu-west-1/2025/03/01/111122223333_CloudTrail-Digest_eu-west-1_management-trail_us-east-1_20250301T010742Z.json.gz").unwrap();
        assert_eq!(k.chain.prefix, None);
        assert_eq!(k.chain.org_id, None);
        assert_eq!(k.chain.account, "111122223333");
        assert_eq!(k.chain.region, "eu-west-1");
        assert_eq!(k.chain.kind, DigestKind::Regular);
        assert_eq!(k.trail_name, "management-trail");
        assert_eq!(k.home_region, "us-east-1");
        assert_eq!(k.time, datetime!(2025-03-01 01:07:42 UTC));
    }

    #[test]
    fn prefixed_org_backfill_key() {
        let k = DigestKey::parse("audit/cloudtrail/AWSLogs/o-a1b2c3d4e5/444455556666/CloudTrail-Digest/us-east-1/2025/03/01/444455556666_CloudTrail-Digest_us-east-1_my_trail_us-east-1_20250301T020529Z_backfill.json.gz").unwrap();
        assert_eq!(k.chain.prefix.as_deref(), Some("audit/cloudtrail"));
        assert_eq!(k.chain.org_id.as_deref(), Some("o-a1b2c3d4e5"));
        assert_eq!(k.chain.account, "444455556666");
        assert_eq!(k.chain.kind, DigestKind::Backfill);
        assert_eq!(k.trail_name, "my_trail");
        assert_eq!(
            k.chain.to_string(),
            "audit/cloudtrail/o-a1b2c3d4e5/444455556666/us-east-1 (backfill)"
        );
    }

    #[test]
    fn regions_of_the_trails_digests() {
        let trail =
            TrailArn::parse("arn:aws:cloudtrail:us-east-1:111122223333:trail/management-trail")
                .unwrap();
        let keys = [
            "AWSLogs/111122223333/CloudTrail-Digest/eu-west-1/2025/03/01/111122223333_CloudTrail-Digest_eu-west-1_management-trail_us-east-1_20250301T010742Z.json.gz",
            "p/AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2025/03/01/111122223333_CloudTrail-Digest_us-east-1_management-trail_us-east-1_20250301T010517Z_backfill.json.gz",
            // same name, other home region: another trail
            "AWSLogs/111122223333/CloudTrail-Digest/ap-south-1/2025/03/01/111122223333_CloudTrail-Digest_ap-south-1_management-trail_eu-west-1_20250301T010517Z.json.gz",
            "AWSLogs/111122223333/CloudTrail/sa-east-1/2025/03/01/111122223333_CloudTrail_sa-east-1_20250301T0009Z_6PnvXWLAtTxK9NFf.json.gz",
        ];
        let regions: Vec<String> = trail_digest_regions(keys, &trail).into_iter().collect();
        assert_eq!(regions, ["eu-west-1", "us-east-1"]);
    }

    #[test]
    fn non_digest_keys_are_none() {
        for bad in [
            "AWSLogs/111122223333/CloudTrail/us-east-1/2025/03/01/111122223333_CloudTrail_us-east-1_20250301T0009Z_6PnvXWLAtTxK9NFf.json.gz",
            // account in folder and file name disagree
            "AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2025/03/01/444455556666_CloudTrail-Digest_us-east-1_t_us-east-1_20250301T010517Z.json.gz",
            // date folder disagrees with the timestamp
            "AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2025/03/02/111122223333_CloudTrail-Digest_us-east-1_t_us-east-1_20250301T010517Z.json.gz",
            // bad timestamp
            "AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2025/03/01/111122223333_CloudTrail-Digest_us-east-1_t_us-east-1_20250301T016517Z.json.gz",
            "/AWSLogs/111122223333/CloudTrail-Digest/us-east-1/2025/03/01/111122223333_CloudTrail-Digest_us-east-1_t_us-east-1_20250301T010517Z.json.gz",
            "CloudTrail-Digest",
            "",
        ] {
            assert_eq!(DigestKey::parse(bad), None, "{bad}");
        }
    }
}
