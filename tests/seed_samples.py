# ruff: noqa: RUF001  (the seeds' "[email\u00a0protected]" holds a NO-BREAK SPACE, kept verbatim)
"""The JSON samples of shared/seeds/, copied verbatim, for tests to compare against.

Each ``*_JSON`` constant is one JSON block exactly as it appears in its seed file (the e-mail
address "[email protected]" is an e-mail-obfuscation artifact of the copied page, with a
NO-BREAK SPACE U+00A0 between its words; kept as is);
the constant without the suffix is that block parsed (dict key order = the seed's key order).
Blocks that several seeds repeat identically appear once, with every seed named.
"""

from __future__ import annotations

import json
from typing import Any, Final

__all__ = [
    "LIST_200",
    "LIST_200_JSON",
    "FORBIDDEN_403",
    "FORBIDDEN_403_JSON",
    "UNAUTHORIZED_401",
    "UNAUTHORIZED_401_JSON",
    "CREATE_201",
    "CREATE_201_JSON",
    "CREATE_400_MISSING_NAME",
    "CREATE_400_MISSING_NAME_JSON",
    "CREATE_400_MISSING_SUB_ACCOUNT",
    "CREATE_400_MISSING_SUB_ACCOUNT_JSON",
    "CREATE_400_DUPLICATE",
    "CREATE_400_DUPLICATE_JSON",
    "UPDATE_200",
    "UPDATE_200_JSON",
    "UPDATE_400_NO_FIELDS",
    "UPDATE_400_NO_FIELDS_JSON",
    "UPDATE_400_DUPLICATE",
    "UPDATE_400_DUPLICATE_JSON",
    "NOT_FOUND_404",
    "NOT_FOUND_404_JSON",
    "DELETE_200",
    "DELETE_200_JSON",
    "VENDOR_004_LIST",
    "VENDOR_004_LIST_JSON",
]

# seeds/000_6d087bf9d8fa3775.txt: 200 Success
LIST_200_JSON: Final = """\
{
  "app_type": "web",
  "app_version": "1.0",
  "maintainence": 0,
  "new_version": 0,
  "force_update": 0,
  "invalid_token": 0,
  "refresh_token": "",
  "show_message": 0,
  "is_enc": false,
  "status": true,
  "message": "Found 2 API token(s)",
  "message_type": "toast",
  "data": {
    "items": [
      {
        "_id": "6877b1234567890abcdef123",
        "name": "Production API",
        "token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9...",
        "status": "active",
        "createdAt": "2024-01-15T10:30:00.000Z",
        "subAccount": {
          "_id": "6877a383d68781beb3b14110",
          "name": "Sub Client Name",
          "email": "[email protected]",
          "companyName": "Sub Client Company"
        }
      },
      {
        "_id": "6877b1234567890abcdef456",
        "name": "Development API",
        "token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9...",
        "status": "active",
        "createdAt": "2024-01-14T08:00:00.000Z",
        "subAccount": {
          "_id": "6877a383d68781beb3b14110",
          "name": "Sub Client Name",
          "email": "[email protected]",
          "companyName": "Sub Client Company"
        }
      }
    ],
    "total": 2,
    "page": 1,
    "limit": 10,
    "totalPages": 1,
    "hasNextPage": false,
    "hasPrevPage": false
  },
  "error": {}
}"""
LIST_200: Final[dict[str, Any]] = json.loads(LIST_200_JSON)

# seeds/000_6d087bf9d8fa3775.txt, seeds/001_9c0ec96e926c3123.txt:
# 403 Forbidden - Invalid Sub Account (identical in both)
FORBIDDEN_403_JSON: Final = """\
{
  "status": false,
  "message": "Forbidden",
  "message_type": "toast",
  "data": {},
  "error": {
    "message": "Sub account does not belong to you or does not exist"
  }
}"""
FORBIDDEN_403: Final[dict[str, Any]] = json.loads(FORBIDDEN_403_JSON)

# seeds/000_6d087bf9d8fa3775.txt, seeds/001_9c0ec96e926c3123.txt,
# seeds/002_fdd0885f0390a240.txt, seeds/003_ef3f0f06d8415810.txt:
# 401 Unauthorized (identical in all four)
UNAUTHORIZED_401_JSON: Final = """\
{
  "code": 401,
  "message": "Token expired",
  "stack": "APIError: Token expired..."
}"""
UNAUTHORIZED_401: Final[dict[str, Any]] = json.loads(UNAUTHORIZED_401_JSON)

# seeds/001_9c0ec96e926c3123.txt: 201 Success
CREATE_201_JSON: Final = """\
{
  "app_type": "web",
  "app_version": "1.0",
  "maintainence": 0,
  "new_version": 0,
  "force_update": 0,
  "invalid_token": 0,
  "refresh_token": "",
  "show_message": 0,
  "is_enc": false,
  "status": true,
  "message": "API token created successfully",
  "message_type": "toast",
  "data": {
    "_id": "6877b1234567890abcdef123",
    "name": "Production API",
    "token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9...",
    "status": "active",
    "subAccountId": "6877a383d68781beb3b14110",
    "createdAt": "2024-01-15T10:30:00.000Z"
  },
  "error": {}
}"""
CREATE_201: Final[dict[str, Any]] = json.loads(CREATE_201_JSON)

# seeds/001_9c0ec96e926c3123.txt: 400 Bad Request - Missing Name
CREATE_400_MISSING_NAME_JSON: Final = """\
{
  "status": false,
  "message": "Validation error",
  "message_type": "toast",
  "data": {},
  "error": {
    "message": "API name is required"
  }
}"""
CREATE_400_MISSING_NAME: Final[dict[str, Any]] = json.loads(CREATE_400_MISSING_NAME_JSON)

# seeds/001_9c0ec96e926c3123.txt: 400 Bad Request - Missing Sub Account ID
CREATE_400_MISSING_SUB_ACCOUNT_JSON: Final = """\
{
  "status": false,
  "message": "Validation error",
  "message_type": "toast",
  "data": {},
  "error": {
    "message": "Sub account ID is required"
  }
}"""
CREATE_400_MISSING_SUB_ACCOUNT: Final[dict[str, Any]] = json.loads(
    CREATE_400_MISSING_SUB_ACCOUNT_JSON
)

# seeds/001_9c0ec96e926c3123.txt: 400 Bad Request - Duplicate Token Name
CREATE_400_DUPLICATE_JSON: Final = """\
{
  "status": false,
  "message": "Validation error",
  "message_type": "toast",
  "data": {},
  "error": {
    "message": "Token name already exists for this sub-account"
  }
}"""
CREATE_400_DUPLICATE: Final[dict[str, Any]] = json.loads(CREATE_400_DUPLICATE_JSON)

# seeds/002_fdd0885f0390a240.txt: 200 Success
UPDATE_200_JSON: Final = """\
{
  "app_type": "web",
  "app_version": "1.0",
  "maintainence": 0,
  "new_version": 0,
  "force_update": 0,
  "invalid_token": 0,
  "refresh_token": "",
  "show_message": 0,
  "is_enc": false,
  "status": true,
  "message": "API token updated successfully",
  "message_type": "toast",
  "data": {
    "_id": "6877b1234567890abcdef123",
    "name": "Updated API Name",
    "token": "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9...",
    "status": "inactive",
    "createdAt": "2024-01-15T10:30:00.000Z",
    "subAccount": {
      "_id": "6877a383d68781beb3b14110",
      "name": "Sub Client Name",
      "email": "[email protected]",
      "companyName": "Sub Client Company"
    }
  },
  "error": {}
}"""
UPDATE_200: Final[dict[str, Any]] = json.loads(UPDATE_200_JSON)

# seeds/002_fdd0885f0390a240.txt: 400 Bad Request - No Valid Fields
UPDATE_400_NO_FIELDS_JSON: Final = """\
{
  "status": false,
  "message": "Validation error",
  "message_type": "toast",
  "data": {},
  "error": {
    "message": "No valid fields to update"
  }
}"""
UPDATE_400_NO_FIELDS: Final[dict[str, Any]] = json.loads(UPDATE_400_NO_FIELDS_JSON)

# seeds/002_fdd0885f0390a240.txt: 400 Bad Request - Duplicate Token Name
UPDATE_400_DUPLICATE_JSON: Final = """\
{
  "status": false,
  "message": "Validation error",
  "message_type": "toast",
  "data": {},
  "error": {
    "message": "Token name already exists for this sub-account"
  }
}"""
UPDATE_400_DUPLICATE: Final[dict[str, Any]] = json.loads(UPDATE_400_DUPLICATE_JSON)

# seeds/002_fdd0885f0390a240.txt, seeds/003_ef3f0f06d8415810.txt: 404 Not Found (identical in both)
NOT_FOUND_404_JSON: Final = """\
{
  "status": false,
  "message": "Not found",
  "message_type": "toast",
  "data": {},
  "error": {
    "message": "API token not found"
  }
}"""
NOT_FOUND_404: Final[dict[str, Any]] = json.loads(NOT_FOUND_404_JSON)

# seeds/003_ef3f0f06d8415810.txt: 200 Success
DELETE_200_JSON: Final = """\
{
  "app_type": "web",
  "app_version": "1.0",
  "maintainence": 0,
  "new_version": 0,
  "force_update": 0,
  "invalid_token": 0,
  "refresh_token": "",
  "show_message": 0,
  "is_enc": false,
  "status": true,
  "message": "API token deleted successfully",
  "message_type": "toast",
  "data": null,
  "error": {}
}"""
DELETE_200: Final[dict[str, Any]] = json.loads(DELETE_200_JSON)

# seeds/004_ec040118bd62ccf7.txt: another vendor's GET /user/api-tokens (meta.pagination shape)
VENDOR_004_LIST_JSON: Final = """\
{
"data": [
{
"id": "A1B2C3D4E5F6G7H8I9J0",
"description": "My API token",
"expiresAt": "2021-01-01T00:00:00+00:00",
"createdAt": "2021-01-01T00:00:00+00:00",
"updatedAt": "2021-01-01T00:00:00+00:00",
"apiToken": "**********"
}
],
"meta": {
"pagination": {
"totalItems": 123,
"itemsPerPage": 123,
"currentPage": 123,
"lastPage": 123,
"pageTotalItems": 123
}
}
}"""
VENDOR_004_LIST: Final[dict[str, Any]] = json.loads(VENDOR_004_LIST_JSON)
