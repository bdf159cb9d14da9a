"""model/provenance.py on files built here: signed C2PA, XMP DigitalSourceType, A1111/ComfyUI chunks, EXIF."""

from __future__ import annotations

import datetime
import io
import json

import pytest
from PIL import Image, PngImagePlugin

import model.preprocess  # noqa: F401  (registers pillow-heif's HEIF saver, which the HEIC cases write with)
from model.provenance import extract_provenance, weak_label

TRAINED = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
CAPTURE = "http://cv.iptc.org/newscodes/digitalsourcetype/digitalCapture"


def _image() -> Image.Image:
    return Image.new("RGB", (24, 16), (120, 30, 200))


def _png(**texts: str) -> bytes:
    info = PngImagePlugin.PngInfo()
    for k, v in texts.items():
        info.add_text(k, v)
    buf = io.BytesIO()
    _image().save(buf, "PNG", pnginfo=info)
    return buf.getvalue()


def _jpeg(exif: Image.Exif | None = None, xmp: bytes | None = None) -> bytes:
    buf = io.BytesIO()
    kw = {}
    if exif is not None:
        kw["exif"] = exif
    if xmp is not None:
        kw["xmp"] = xmp
    _image().save(buf, "JPEG", quality=80, **kw)
    return buf.getvalue()


def _xmp(source_type: str) -> bytes:
    return (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        '<rdf:Description xmlns:Iptc4xmpExt="http://iptc.org/std/Iptc4xmpExt/2008-02-29/" '
        f'Iptc4xmpExt:DigitalSourceType="{source_type}"/></rdf:RDF></x:xmpmeta>'
    ).encode()


def test_plain_image_has_no_provenance():
    prov = extract_provenance(_jpeg())
    assert prov["c2pa"] is None and prov["generator"] is None and prov["software"] is None
    assert prov["ai_hint"] is False and weak_label(prov) is None
    json.dumps(prov)


def test_a1111_parameters_chunk():
    prov = extract_provenance(_png(parameters="a cat\nSteps: 20, Sampler: Euler a, CFG scale: 7, Seed: 1"))
    assert prov["generator"] == "AUTOMATIC1111" and prov["ai_hint"] and weak_label(prov) == "ai"
    assert "png:parameters" in prov["evidence"]


def test_a1111_jpeg_user_comment():
    exif = Image.Exif()
    exif.get_ifd(0x8769)[0x9286] = b"UNICODE\x00" + "Steps: 30, Sampler: DPM++ 2M".encode("utf-16-be")
    prov = extract_provenance(_jpeg(exif=exif))
    assert prov["generator"] == "AUTOMATIC1111" and prov["ai_hint"]


def test_comfyui_prompt_and_workflow_chunks():
    prompt = json.dumps({"3": {"class_type": "KSampler", "inputs": {"seed": 1}}})
    assert extract_provenance(_png(prompt=prompt))["generator"] == "ComfyUI"
    workflow = json.dumps({"nodes": [{"id": 1, "type": "CheckpointLoaderSimple"}], "links": []})
    assert extract_provenance(_png(workflow=workflow))["generator"] == "ComfyUI"
    # A chunk merely named "prompt" with prose in it is not ComfyUI.
    assert extract_provenance(_png(prompt="a nice sunset"))["generator"] is None


def test_exif_software_camera_vs_generator():
    camera = Image.Exif()
    camera[0x0131] = "GIMP 2.10.36"
    prov = extract_provenance(_jpeg(exif=camera))
    assert prov["software"] == "GIMP 2.10.36" and prov["generator"] is None and not prov["ai_hint"]
    gen = Image.Exif()
    gen[0x0131] = "Adobe Firefly"
    prov = extract_provenance(_jpeg(exif=gen))
    assert prov["software"] == prov["generator"] == "Adobe Firefly" and prov["ai_hint"]


def test_xmp_digital_source_type_in_jpeg_and_png():
    prov = extract_provenance(_jpeg(xmp=_xmp(TRAINED)))
    assert prov["iptc_digital_source_type"] == "trainedAlgorithmicMedia"
    assert prov["ai_hint"] and weak_label(prov) == "ai"
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", _xmp(CAPTURE).decode(), zip=True)
    buf = io.BytesIO()
    _image().save(buf, "PNG", pnginfo=info)
    prov = extract_provenance(buf.getvalue())
    assert prov["iptc_digital_source_type"] == "digitalCapture" and not prov["ai_hint"]


@pytest.mark.parametrize("fmt", ["HEIF", "AVIF"])
def test_exif_and_xmp_in_heic_and_avif(fmt):
    """Phones save HEIC and CDNs AVIF: the generator's EXIF Software and an XMP source type are read there too."""
    gen = Image.Exif()
    gen[0x0131] = "Adobe Firefly"
    buf = io.BytesIO()
    _image().save(buf, fmt, exif=gen.tobytes(), xmp=_xmp(TRAINED))
    prov = extract_provenance(buf.getvalue())
    assert prov["software"] == prov["generator"] == "Adobe Firefly" and prov["ai_hint"]
    assert prov["iptc_digital_source_type"] == "trainedAlgorithmicMedia"
    assert prov["c2pa"] is None


def test_contradicting_fields_give_no_weak_label():
    exif = Image.Exif()
    exif[0x0131] = "Midjourney"
    prov = extract_provenance(_jpeg(exif=exif, xmp=_xmp(CAPTURE)))
    assert prov["ai_hint"] and weak_label(prov) is None


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not an image at all",
        b"\x89PNG\r\n\x1a\n" + b"\xff" * 40,  # absurd chunk length
        b"\x89PNG\r\n\x1a\n\x00\x00\x00\x10zTXtkey\x00\x00" + b"\x78\x9c" + b"\x00" * 10,
        b"\xff\xd8\xff\xe1\xff\xffExif\x00\x00MM\x00*\xff\xff\xff\xff",  # IFD offset past the end
        b"\xff\xd8\xff\xeb\x00\x40JP" + b"c2pa" * 20,  # a C2PA box that is garbage
        b"RIFF\x10\x00\x00\x00WEBPEXIF\xff\xff\xff\xff",
        b"II*\x00\x08\x00\x00\x00\xff\xff",
        b"\x00\x00\x00\x01ftypheic\xff\xff",  # 64-bit size cut short
        b"\x00\x00\x00\x18ftypavif\x00\x00\x00\x00mif1" + b"\x00\x00\x00\x00" * 300,  # empty boxes
        b"\x00\x00\x00\x10ftypmif1\x00\x00\x00\x00\xff\xff\xff\xffuuid" + bytes.fromhex("d8fec3d61b0e483c"),
        b"\x00\x00\x00\x10ftypheicExif\x00\x00MM\x00*\xff\xff\xff\xff",  # Exif IFD offset past the end
    ],
)
def test_hostile_input_never_raises(data):
    prov = extract_provenance(data)
    assert set(prov) >= {"c2pa", "iptc_digital_source_type", "generator", "software", "ai_hint"}
    json.dumps(prov)


def test_zip_bomb_text_chunk_is_capped():
    import zlib

    bomb = zlib.compress(b"A" * (64 << 20), 9)  # 64 MiB of text in ~64 KiB
    info = PngImagePlugin.PngInfo()
    buf = io.BytesIO()
    _image().save(buf, "PNG", pnginfo=info)
    png = buf.getvalue()
    chunk_body = b"Comment\x00\x00" + bomb
    import struct

    chunk = struct.pack(">I", len(chunk_body)) + b"zTXt" + chunk_body + b"\x00\x00\x00\x00"
    data = png[:33] + chunk + png[33:]  # after IHDR
    from model.image_metadata import MAX_TEXT, read_metadata

    # What is inflated stops at the cap: 1 MiB of the 64 the chunk would expand to.
    assert len(read_metadata(data).texts["Comment"]) == MAX_TEXT
    assert extract_provenance(data)["ai_hint"] is False


def _signer():
    """A throwaway CA and ES256 signing certificate, made here: C2PA signing needs no network."""
    c2pa = pytest.importorskip("c2pa")
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                          x509.NameAttribute(NameOID.ORGANIZATION_NAME, "aidetect tests")])

    now = datetime.datetime.now(datetime.UTC)
    usage = dict(content_commitment=False, key_encipherment=False, data_encipherment=False,
                 key_agreement=False, encipher_only=False, decipher_only=False)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder().subject_name(name("test root")).issuer_name(name("test root"))
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, key_cert_sign=True, crl_sign=True, **usage),
                       critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder().subject_name(name("test signer")).issuer_name(ca.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=7))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False, **usage),
                       critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    chain = leaf.public_bytes(serialization.Encoding.PEM) + ca.public_bytes(serialization.Encoding.PEM)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    return c2pa, c2pa.Signer.from_info(c2pa.C2paSignerInfo(c2pa.C2paSigningAlg.ES256, chain, pem, None))


# Pillow's writer for each MIME subtype C2PA signs
PILLOW_FORMAT = {"jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "heic": "HEIF", "avif": "AVIF"}


def _signed(fmt: str, source_type: str) -> bytes:
    c2pa, signer = _signer()
    manifest = {
        "claim_generator_info": [{"name": "aidetect-test-generator", "version": "1.0"}],
        "title": "generated",
        "assertions": [{"label": "c2pa.actions", "data": {"actions": [
            {"action": "c2pa.created", "digitalSourceType": source_type,
             "softwareAgent": {"name": "TestDiffusion 2"}}]}}],
    }
    src = io.BytesIO()
    _image().save(src, PILLOW_FORMAT[fmt])
    src.seek(0)
    dst = io.BytesIO()
    with c2pa.Builder(manifest) as builder:
        builder.sign(signer, f"image/{fmt}", src, dst)
    return dst.getvalue()


@pytest.mark.parametrize("fmt", ["jpeg", "png", "webp", "heic", "avif"])
def test_signed_c2pa_manifest_is_read(fmt):
    prov = extract_provenance(_signed(fmt, TRAINED))
    c2 = prov["c2pa"]
    assert c2["present"] and "error" not in c2, c2
    assert c2["claim_generator"] == "aidetect-test-generator"
    assert c2["digital_source_type"] == "trainedAlgorithmicMedia"
    assert "c2pa.created" in c2["actions"] and "TestDiffusion 2" in c2["software_agents"]
    assert c2["signature_issuer"] == "aidetect tests"
    # Our throwaway CA is in no trust list: the signature checks out but the signer is untrusted.
    assert c2["validation"] == "untrusted"
    assert prov["ai_hint"] and weak_label(prov) == "ai"
    json.dumps(prov)


def test_c2pa_capture_manifest_is_no_ai_hint():
    prov = extract_provenance(_signed("jpeg", CAPTURE))
    assert prov["c2pa"]["digital_source_type"] == "digitalCapture" and not prov["ai_hint"]


def test_tampered_c2pa_image_is_invalid():
    data = bytearray(_signed("jpeg", TRAINED))
    data[-200] ^= 0xFF  # flip a byte of the image data the manifest's hash covers
    prov = extract_provenance(bytes(data))
    assert prov["c2pa"]["present"]
    assert prov["c2pa"].get("validation") == "invalid" or "error" in prov["c2pa"]
    assert weak_label(prov) is None


@pytest.mark.parametrize("fmt", ["jpeg", "png", "heic"])
def test_corrupted_signed_files_never_raise(fmt):
    """Truncations, byte flips and splices of a signed file: the native C2PA reader must fail politely."""
    import random

    rng = random.Random(0)
    data = _signed(fmt, TRAINED)
    for i in range(150):
        d = bytearray(data)
        if i % 3 == 0:
            d = d[: rng.randrange(len(d))]
        elif i % 3 == 1:
            for _ in range(rng.randrange(1, 20)):
                d[rng.randrange(len(d))] = rng.randrange(256)
        else:
            at = rng.randrange(len(d))
            d[at : at + rng.randrange(1, 500)] = rng.randbytes(rng.randrange(50))
        prov = extract_provenance(bytes(d))
        json.dumps(prov)
