# Writes a trained model as a released-layout checkpoint directory: config.json, model.safetensors
# (float32, the checkpoint's tensor names, plus freqs_cis [1, block_size, 1, head_dim/2, 2]),
# tokenizer.json and generation_config.json. The safetensors writer is the format itself: an
# 8-byte little-endian header length, a JSON header of dtypes, shapes and byte offsets, the data.
import json
import os
import struct

import torch

import task
from model import rope_table


def write_safetensors(path, tensors):
    header, offset, blobs = {"__metadata__": {"format": "pt"}}, 0, []
    for name, tensor in tensors.items():
        integer = tensor.dtype == torch.int64
        data = tensor.detach().to(torch.int64 if integer else torch.float32).contiguous()
        data = data.numpy().tobytes()
        header[name] = {"dtype": "I64" if integer else "F32", "shape": list(tensor.shape),
                        "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # data starts 8-byte aligned
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


def read_safetensors(path):
    with open(path, "rb") as f:
        size = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(size))
        data = f.read()
    dtypes = {"F32": torch.float32, "I64": torch.int64, "I32": torch.int32}
    out = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        out[name] = torch.frombuffer(bytearray(data[begin:end]), dtype=dtypes[entry["dtype"]])
        out[name] = out[name].reshape(entry["shape"])
    return out


def write_model_dir(model, config, out):
    os.makedirs(out, exist_ok=True)
    tensors = {name: p for name, p in model.state_dict().items()}
    head_dim = config["n_embd"] // config["n_heads"]
    table = rope_table(head_dim, config["block_size"], config["rope_base"])
    tensors["freqs_cis"] = table.reshape(1, config["block_size"], 1, head_dim // 2, 2)
    write_safetensors(os.path.join(out, "model.safetensors"), tensors)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    task.write_tokenizer(os.path.join(out, "tokenizer.json"))
    generation = {"bos_token_id": task.BOS, "eos_token_id": task.EOS, "pad_token_id": task.PAD}
    with open(os.path.join(out, "generation_config.json"), "w") as f:
        json.dump(generation, f, indent=2)
