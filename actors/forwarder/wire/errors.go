package wire

import "strconv"

// Error is a framing error: the message cannot be read safely, and the connection it came on
// must be closed after the status is answered. Status is the code the client should get:
//
//   - from RequestHead.Read: 400 for malformed or ambiguous input, 414 for an over-long request
//     line, 431 for an over-large or over-numerous header section, 501 for a transfer coding
//     other than chunked (one we cannot frame or pass on), 505 for an HTTP version other than
//     1.0 and 1.1;
//   - from ResponseHead.Read: always 502 (the backend sent something we will not pass on);
//   - from CopyChunked: 400 for malformed chunked framing, 431 for over-large trailers; a caller
//     copying a response body answers 502 (or simply aborts, if the head has gone out) instead.
//
// The *Error values this package returns are shared and must not be modified. Compare them
// with errors.As and read Status; Reason is for logs.
type Error struct {
	Status int    // HTTP status code for the client
	Reason string // constant, lowercase, for logs
}

// Error formats the error; it is off the hot path.
func (e *Error) Error() string {
	return "wire: " + e.Reason + " (" + strconv.Itoa(e.Status) + ")"
}

// reason identifies a framing error; reasons[r] is its text.
type reason uint8

const (
	rNone reason = iota
	rBareLF
	rBareCR
	rRequestLine
	rMethod
	rTarget
	rVersion
	rVersionUnsupported
	rRequestLineTooLong
	rHeadTooLarge
	rTooManyFields
	rObsFold
	rSpaceBeforeColon
	rFieldName
	rFieldValue
	rHost
	rHostMissing
	rHostRepeated
	rContentLength
	rContentLengthRepeated
	rTransferEncoding
	rChunkedNotFinal
	rChunkedRepeated
	rCodingUnsupported
	rBothLengthAndChunked
	rTransferEncodingHTTP10
	rStatusLine
	rStatusCode
	rReason
	rEmptyLines
	rChunkSize
	rChunkExtension
	rChunkLineTooLong
	rChunkData
	rTrailer
	rTrailerTooLarge
	nReasons
)

var reasons = [nReasons]string{
	rNone:                   "no error",
	rBareLF:                 "line ends in a bare LF",
	rBareCR:                 "bare CR in head",
	rRequestLine:            "malformed request line",
	rMethod:                 "invalid method",
	rTarget:                 "invalid request target",
	rVersion:                "malformed HTTP version",
	rVersionUnsupported:     "unsupported HTTP version",
	rRequestLineTooLong:     "request line too long",
	rHeadTooLarge:           "header section too large",
	rTooManyFields:          "too many header fields",
	rObsFold:                "obsolete line folding",
	rSpaceBeforeColon:       "whitespace between field name and colon",
	rFieldName:              "invalid field name",
	rFieldValue:             "invalid byte in field value",
	rHost:                   "invalid Host",
	rHostMissing:            "missing Host",
	rHostRepeated:           "several Host fields",
	rContentLength:          "invalid Content-Length",
	rContentLengthRepeated:  "several Content-Length values",
	rTransferEncoding:       "invalid Transfer-Encoding",
	rChunkedNotFinal:        "chunked is not the final transfer coding",
	rChunkedRepeated:        "chunked applied more than once",
	rCodingUnsupported:      "unsupported transfer coding",
	rBothLengthAndChunked:   "both Content-Length and Transfer-Encoding",
	rTransferEncodingHTTP10: "Transfer-Encoding in an HTTP/1.0 message",
	rStatusLine:             "malformed status line",
	rStatusCode:             "invalid status code",
	rReason:                 "invalid reason phrase",
	rEmptyLines:             "too many empty lines before the request line",
	rChunkSize:              "invalid chunk size",
	rChunkExtension:         "invalid chunk extension",
	rChunkLineTooLong:       "chunk-size line too long",
	rChunkData:              "chunk data not followed by CRLF",
	rTrailer:                "invalid trailer field",
	rTrailerTooLarge:        "trailer section too large",
}

// requestStatus is the status a client gets for each reason; zero means 400.
var requestStatus = [nReasons]int{
	rVersionUnsupported: 505,
	rRequestLineTooLong: 414,
	rHeadTooLarge:       431,
	rTooManyFields:      431,
	rCodingUnsupported:  501,
	rTrailerTooLarge:    431,
}

// requestErrors and responseErrors hold one shared *Error per reason, so that even the error
// path allocates nothing.
var requestErrors, responseErrors = buildErrors()

func buildErrors() (req, resp [nReasons]Error) {
	for r := range nReasons {
		status := requestStatus[r]
		if status == 0 {
			status = 400
		}
		req[r] = Error{Status: status, Reason: reasons[r]}
		resp[r] = Error{Status: 502, Reason: "response: " + reasons[r]}
	}
	return req, resp
}

func requestError(r reason) *Error  { return &requestErrors[r] }
func responseError(r reason) *Error { return &responseErrors[r] }
