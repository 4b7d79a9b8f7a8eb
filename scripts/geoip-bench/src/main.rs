// Lookup cost of a country in a GeoLite2-Country-sized database (400,000 IPv4 /24s and
// 100,000 IPv6 /48s), written by mmdb-writer, read by maxminddb 0.32 as cip does.
use mmdb_writer::{Value, Writer};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Instant;

fn main() {
    let ccs = ["US", "DE", "FR", "JP", "BR", "IN", "GB", "CA", "AU", "NL"];
    let mut w = Writer::builder("GeoLite2-Country")
        .description(&[("en", "bench")])
        .build();
    let vals: Vec<Value> = ccs
        .iter()
        .map(|c| Value::map([("country", Value::map([("iso_code", Value::from(*c))]))]))
        .collect();
    let mut x: u32 = 0x0100_0000;
    for i in 0..400_000u32 {
        x = x.wrapping_add(0x100 * (1 + (i % 7)));
        let net = ipnet::Ipv4Net::new(Ipv4Addr::from(x & 0xffff_ff00), 24).unwrap();
        w.insert_value(net, vals[(i % 10) as usize].clone())
            .unwrap();
    }
    for i in 0..100_000u64 {
        let a: u128 = (0x2a00u128 << 112) | ((i as u128 * 7919) << 80);
        let net = ipnet::Ipv6Net::new(Ipv6Addr::from(a), 48).unwrap();
        w.insert_value(net, vals[(i % 10) as usize].clone())
            .unwrap();
    }
    let bytes = w.to_bytes().unwrap();
    println!("database: {} bytes", bytes.len());
    let t = Instant::now();
    let r = maxminddb::Reader::from_source(bytes).unwrap();
    r.verify().unwrap();
    println!("open + verify: {:?}", t.elapsed());
    let n = 2_000_000u32;
    let mut found = 0u64;
    let t = Instant::now();
    let mut s: u32 = 12345;
    for _ in 0..n {
        s = s.wrapping_mul(1664525).wrapping_add(1013904223);
        let ip = IpAddr::V4(Ipv4Addr::from(s));
        let l = r.lookup(ip).unwrap();
        let c: Option<&str> = l
            .decode_path(&[
                maxminddb::PathElement::Key("country"),
                maxminddb::PathElement::Key("iso_code"),
            ])
            .unwrap();
        if c.is_some() {
            found += 1;
        }
    }
    let e = t.elapsed();
    let mut hits = Vec::new();
    let mut x: u32 = 0x0100_0000;
    for i in 0..400_000u32 {
        x = x.wrapping_add(0x100 * (1 + (i % 7)));
        hits.push((x & 0xffff_ff00) | 7);
    }
    let t2 = Instant::now();
    let mut found2 = 0u64;
    for k in 0..n as usize {
        let ip = IpAddr::V4(Ipv4Addr::from(hits[(k * 7919) % hits.len()]));
        let l = r.lookup(ip).unwrap();
        let c: Option<&str> = l
            .decode_path(&[
                maxminddb::PathElement::Key("country"),
                maxminddb::PathElement::Key("iso_code"),
            ])
            .unwrap();
        if c.is_some() {
            found2 += 1;
        }
    }
    let e2 = t2.elapsed();
    println!(
        "{n} IPv4 lookups inside the database: {:?} = {:.0} ns/lookup ({found2} found)",
        e2,
        e2.as_nanos() as f64 / n as f64
    );
    println!(
        "{n} random IPv4 lookups: {:?} = {:.0} ns/lookup ({found} found)",
        e,
        e.as_nanos() as f64 / n as f64
    );
}
